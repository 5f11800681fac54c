"""Untrusted inputs: one image-reading policy (decompression bombs, truncated and non-image files) and ambiguous
Folder classes (names equal as CLIP reads them, classnames.txt lines for folders that do not exist)."""
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data.data_manager import ImageReadError, read_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_bomb_png(path, side=20000):
    """A valid 1-bit ``side`` x ``side`` PNG of zeros, written row by row (20000 x 20000 is about 48 KB on disk and
    400 million pixels, over twice ``PIL.Image.MAX_IMAGE_PIXELS``)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def write_png(path, rgb=(200, 30, 30), size=32):
    Image.fromarray(np.full((size, size, 3), rgb, dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bomb") / "bomb.png")
    write_bomb_png(path)
    return path


def test_a_decompression_bomb_is_an_image_read_error(bomb):
    assert os.path.getsize(bomb) < 100_000
    with pytest.raises(Image.DecompressionBombError):  # PIL's own check, and not an OSError
        Image.open(bomb)
    assert not issubclass(Image.DecompressionBombError, OSError)
    with pytest.raises(ImageReadError, match=r"Refusing image .*bomb\.png: Image size \(400000000 pixels\)"):
        read_image(bomb)


def test_the_decompression_bomb_warning_band_is_refused_too(tmp_path, monkeypatch):
    """Between MAX_IMAGE_PIXELS and twice it PIL only warns, then decodes the whole image."""
    path = str(tmp_path / "big.png")
    write_png(path, size=40)  # 1,600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(path).close()
    with pytest.raises(ImageReadError, match="Refusing image .*big.png"):
        read_image(path)


def test_a_damaged_header_that_pil_reports_as_valueerror_is_one_image_read_error(tmp_path):
    """Not every damaged file gives an OSError: a PPM whose header runs into its pixels gives PIL's ValueError."""
    path = str(tmp_path / "x.png")  # PIL goes by the contents, not the extension
    open(path, "wb").write(b"P6\n32 32\n255" + bytes(range(0x21, 0x7F)) * 40)
    with pytest.raises(ValueError):
        Image.open(path).convert("RGB")
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert "\n" not in str(e.value) and path in str(e.value)


def test_an_error_in_a_loader_worker_stays_one_line(tmp_path, bomb):
    """torch re-raises a worker's exception with the worker's traceback in its message; the user sees one line."""
    from engine.data.data_manager import DatasetWrapper
    from engine.data.datasets import Datum
    from tests.helpers import tiny_cfg

    cfg = tiny_cfg(str(tmp_path / "data"), str(tmp_path / "out"), opts=["DATALOADER.NUM_WORKERS", "1"])
    loader = torch.utils.data.DataLoader(DatasetWrapper(cfg, [Datum(impath=bomb, label=0, classname="x")]),
                                         num_workers=1, collate_fn=lambda b: b)
    with pytest.raises(ImageReadError) as e:
        next(iter(loader))
    assert str(e.value).startswith("Refusing image ") and "\n" not in str(e.value)


# ---- Folder: the split skips what training could not read ------------------------------------------------------
def folder_cfg(root, out):
    from engine.config import build_cfg

    return build_cfg(os.path.join(REPO, "configs/datasets/folder.yaml"), "", [], root=str(root), output_dir=str(out))


def make_classes(root, folders, n=4):
    for i, name in enumerate(folders):
        os.makedirs(root / name, exist_ok=True)
        for j in range(n):
            write_png(str(root / name / f"{j}.png"), rgb=(40 * i, 100, 255 - 40 * j))


def test_folder_split_leaves_out_bombs_and_truncated_images_with_a_warning(tmp_path, bomb, caplog):
    from datasets.folder import Folder

    root = tmp_path / "photos"
    make_classes(root, ["cat", "dog"])
    os.link(bomb, root / "cat" / "bomb.png")
    write_png(str(root / "dog" / "cut.png"), size=64)
    data = open(root / "dog" / "cut.png", "rb").read()
    open(root / "dog" / "cut.png", "wb").write(data[: len(data) // 2])
    ds = Folder(folder_cfg(root, tmp_path / "out"))
    used = {os.path.basename(d.impath) for part in (ds.train_x, ds.val, ds.test) for d in part}
    assert "bomb.png" not in used and "cut.png" not in used and len(used) == 4  # 0-3.png in both classes
    warning = [r.getMessage() for r in caplog.records if "unreadable image" in r.getMessage()]
    assert len(warning) == 1 and "cat/bomb.png" in warning[0] and "dog/cut.png" in warning[0]


# ---- Folder: ambiguous classes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("folders,classnames,clash", [
    (["a b", "a_b", "c"], "", ['"a b" and "a_b"']),
    (["cat", "dog", "fox"], "cat circle thing\nfox Circle  Thing\n", ['"cat" and "fox"']),
    (["Cat", "cat", "dog"], "", ['"Cat" and "cat"']),
])
def test_classes_with_the_same_name_are_refused_naming_the_folders(tmp_path, folders, classnames, clash):
    from datasets.folder import Folder
    from engine.data.datasets import DatasetError

    root = tmp_path / "photos"
    make_classes(root, folders)
    if classnames:
        (root / "classnames.txt").write_text(classnames)
    with pytest.raises(DatasetError) as e:
        Folder(folder_cfg(root, tmp_path / "out"))
    assert all(c in str(e.value) for c in clash) and "\n" not in str(e.value)
    assert not (root / "split_zhou_Folder.json").exists()


def test_a_reused_split_with_clashing_names_is_refused(tmp_path):
    import json

    from datasets.folder import Folder
    from engine.data.datasets import DatasetError

    root = tmp_path / "photos"
    make_classes(root, ["cat", "dog"])
    split = {part: [[f"{c}/{j}.png", i, "same thing"] for i, c in enumerate(["cat", "dog"]) for j in js]
             for part, js in (("train", [0, 1]), ("val", [2]), ("test", [3]))}
    (root / "split_zhou_Folder.json").write_text(json.dumps(split))
    with pytest.raises(DatasetError, match='"cat" and "dog" are all "same thing"'):
        Folder(folder_cfg(root, tmp_path / "out"))


def test_a_classnames_line_for_a_missing_folder_is_refused(tmp_path):
    from datasets.folder import Folder
    from engine.data.datasets import DatasetError

    root = tmp_path / "photos"
    make_classes(root, ["cat", "dog"])
    (root / "classnames.txt").write_text("cat tabby cat\ndgo puppy\n")
    with pytest.raises(DatasetError, match="names 'dgo', which is no class folder"):
        Folder(folder_cfg(root, tmp_path / "out"))


def test_train_py_reports_ambiguous_classes_in_one_line_exit_2(tmp_path, capsys):
    import train

    root = tmp_path / "photos"
    make_classes(root, ["a b", "a_b"])
    rc = train.main(["--root", str(root), "--trainer", "ZeroshotCLIP", "--output-dir", str(tmp_path / "out"),
                     "--dataset-config-file", f"{REPO}/configs/datasets/folder.yaml",
                     "--config-file", f"{REPO}/configs/trainers/CoOp/toy.yaml", "--eval-only"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: Folder: classes with the same name") and err.count("\n") == 1
