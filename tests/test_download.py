"""Tests for the dataset download tool (datasets/download.py, layout.py, sources.py).

Every transfer goes to a local HTTP server on 127.0.0.1 (with Range support written here) serving
archives built in tmp_path; Google Drive is an injected stand-in, so no test touches the internet
or calls gdown.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import random
import re
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from datasets import download as dl
from datasets.layout import (LAYOUTS, Layout, UnknownDatasetError, fetch_command, find_layout,
                             missing_optional, missing_paths, missing_split_files)
from datasets.sources import SOURCES, Item, Mirror, Source


# --------------------------------------------------------------------------- local server

class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.store` (path -> bytes). Honours "Range: bytes=N-" when `server.ranges`;
    for a path in `server.cut`, the first answer announces the full length but sends only that
    many bytes before closing the connection."""

    timeout = 5

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.store.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, asked = 0, self.headers.get("Range")
        if asked and srv.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = srv.cut.pop(self.path, None)
        self.wfile.write(payload if cut is None else payload[:cut])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.store, srv.requests, srv.cut, srv.ranges = {}, [], {}, True
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_port}{path}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


FAST_HTTP = functools.partial(dl.http_download, retries=0, timeout=5, backoff_s=0)


def drive(files: dict[str, bytes], calls: list[str]):
    """A Google Drive stand-in: writes the bytes stored for an id, fails for unknown ids."""
    def fetch(file_id: str, dest: Path, *, quiet: bool) -> None:
        calls.append(file_id)
        if file_id not in files:
            raise dl.DownloadError("no network in tests")
        dest.write_bytes(files[file_id])
    return fetch


def no_download(source: str, dest: Path, *, quiet: bool) -> None:
    raise AssertionError(f"unexpected download of {source}")


# --------------------------------------------------------------------------- archives

def noise(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def tar_gz(files: dict[str, bytes], links: dict[str, tuple[str, str]] = None) -> bytes:
    """A tar.gz of regular files, plus links: name -> ("sym" | "hard", target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = (tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE), target
            tf.addfile(info)
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


SPLIT = {"train": [["a/1.jpg", 0, "a"]], "val": [["a/2.jpg", 0, "a"]], "test": [["b/3.jpg", 1, "b"]]}
SPLIT_BYTES = json.dumps(SPLIT).encode()
TOY = Layout("toy", "Toy", "toy", ("images/", "split_zhou_Toy.json"), optional=("annotations/",), image_dir="images")
IMAGES = {"images/a/1.jpg": noise(150_000, 1), "images/a/2.jpg": b"two", "images/b/3.jpg": b"three"}


def toy_source(server, images_md5: str | None = None) -> Source:
    archive = tar_gz(IMAGES)
    server.store["/images.tar.gz"] = archive
    return Source("toy", (
        Item(("images/",), (Mirror("images.tar.gz", url=server.url("/images.tar.gz"),
                                   md5=images_md5 if images_md5 is not None else md5(archive),
                                   moves=(("images", "images"),)),)),
        Item(("split_zhou_Toy.json",), (Mirror("split_zhou_Toy.json", gdrive_id="SPLIT-ID"),)),
    ))


def run(source, root, http=FAST_HTTP, gdrive=None, **kw):
    lines: list[str] = []
    outcome = dl.prepare(source, TOY, root, downloaders=dl.Downloaders(http=http, gdrive=gdrive or no_download),
                         quiet=True, log=lines.append, **kw)
    return outcome, "\n".join(lines)


def leftovers(root: Path) -> list[str]:
    """Temporary or partial files anywhere under root."""
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.name.startswith((".unpack-", ".inner")) or p.name.endswith((".part", ".tmp"))]


# --------------------------------------------------------------------------- full download

def test_full_download_verifies_unpacks_and_lays_out(server, tmp_path):
    calls: list[str] = []
    outcome, log = run(toy_source(server), tmp_path, gdrive=drive({"SPLIT-ID": SPLIT_BYTES}, calls))

    assert outcome.complete and outcome.missing == [] and outcome.split_missing == [] and outcome.errors == []
    assert (tmp_path / "toy/images/a/1.jpg").read_bytes() == IMAGES["images/a/1.jpg"]
    assert (tmp_path / "toy/images/b/3.jpg").read_bytes() == b"three"
    assert json.loads((tmp_path / "toy/split_zhou_Toy.json").read_text()) == SPLIT
    assert calls == ["SPLIT-ID"]
    assert "md5 verified" in log and "content checked" in log
    assert outcome.missing_optional == [f"{tmp_path}/toy/annotations/"]
    assert not (tmp_path / dl.DOWNLOADS).exists()  # archive deleted, empty folders removed
    assert leftovers(tmp_path) == []


def test_keep_archives_then_rerun_downloads_nothing(server, tmp_path):
    source = toy_source(server)
    gdrive = drive({"SPLIT-ID": SPLIT_BYTES}, [])
    run(source, tmp_path, gdrive=gdrive, keep_archives=True)
    kept = tmp_path / dl.DOWNLOADS / "toy" / "images.tar.gz"
    assert kept.read_bytes() == server.store["/images.tar.gz"]

    server.requests.clear()
    outcome, log = run(source, tmp_path, http=no_download, gdrive=no_download)
    assert outcome.complete and server.requests == []
    assert log.count("present") == 2


# --------------------------------------------------------------------------- resume

def test_existing_part_file_is_resumed_with_range(server, tmp_path):
    source = toy_source(server)
    archive = server.store["/images.tar.gz"]
    part = tmp_path / dl.DOWNLOADS / "toy" / "images.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive[:1000])

    outcome, _ = run(source, tmp_path, gdrive=drive({"SPLIT-ID": SPLIT_BYTES}, []))

    assert outcome.complete
    assert server.requests == [("/images.tar.gz", "bytes=1000-")]
    assert (tmp_path / "toy/images/a/1.jpg").read_bytes() == IMAGES["images/a/1.jpg"]


def test_cut_connection_keeps_part_and_rerun_completes_byte_identical(server, tmp_path):
    body = noise(200_000, 7)
    server.store["/big.bin"] = body
    server.cut["/big.bin"] = 70_000
    dest = tmp_path / "big.bin.part"

    with pytest.raises(dl.DownloadError, match="rerun the same command to resume"):
        FAST_HTTP(server.url("/big.bin"), dest, quiet=True)
    assert dest.stat().st_size == 70_000

    FAST_HTTP(server.url("/big.bin"), dest, quiet=True)
    assert server.requests == [("/big.bin", None), ("/big.bin", "bytes=70000-")]
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(body).digest()


def test_retry_within_one_call_continues_from_received_bytes(server, tmp_path):
    body = noise(120_000, 3)
    server.store["/f.bin"] = body
    server.cut["/f.bin"] = 50_000
    dest = tmp_path / "f.bin.part"
    dl.http_download(server.url("/f.bin"), dest, quiet=True, retries=1, timeout=5, backoff_s=0)
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=50000-")]
    assert dest.read_bytes() == body


def test_server_ignoring_range_rewrites_from_start(server, tmp_path):
    body = noise(30_000, 4)
    server.store["/f.bin"] = body
    server.ranges = False
    dest = tmp_path / "f.bin.part"
    dest.write_bytes(b"stale bytes that must not be kept")
    FAST_HTTP(server.url("/f.bin"), dest, quiet=True)
    assert dest.read_bytes() == body


def test_complete_part_file_is_accepted_after_416(server, tmp_path):
    body = noise(5_000, 5)
    server.store["/f.bin"] = body
    dest = tmp_path / "f.bin.part"
    dest.write_bytes(body)
    FAST_HTTP(server.url("/f.bin"), dest, quiet=True)
    assert server.requests == [("/f.bin", "bytes=5000-")]
    assert dest.read_bytes() == body


def test_unreachable_host_says_so_and_leaves_no_partial_file(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "f.bin.part"
    with pytest.raises(dl.DownloadError, match=f"could not download http://127.0.0.1:{port}/f.bin"):
        FAST_HTTP(f"http://127.0.0.1:{port}/f.bin", dest, quiet=True)
    assert not dest.exists()


# --------------------------------------------------------------------------- refusals

def test_bad_checksum_is_refused_and_nothing_is_left_behind(server, tmp_path):
    outcome, log = run(toy_source(server, images_md5="0" * 32), tmp_path,
                       gdrive=drive({"SPLIT-ID": SPLIT_BYTES}, []))

    assert not outcome.complete
    assert outcome.missing == [f"{tmp_path}/toy/images/"]
    assert len(outcome.errors) == 1
    assert f"md5 is {md5(server.store['/images.tar.gz'])}, expected {'0' * 32}" in outcome.errors[0]
    assert "deleted and not unpacked" in outcome.errors[0]
    assert not (tmp_path / "toy/images").exists()
    assert not (tmp_path / dl.DOWNLOADS / "toy" / "images.tar.gz").exists()
    assert leftovers(tmp_path) == []


def test_bad_user_supplied_file_is_kept_and_not_unpacked(tmp_path):
    """Stanford Cars style: a mirror without URL whose file the user put in _downloads."""
    supplied = tmp_path / dl.DOWNLOADS / "toy" / "cars_train.tgz"
    supplied.parent.mkdir(parents=True)
    supplied.write_bytes(tar_gz({"cars_train/00001.jpg": b"x"}))
    source = Source("toy", (Item(("images/",), (Mirror("cars_train.tgz", md5="f" * 32,
                                                      moves=(("cars_train", "images"),)),)),),
                    manual="put cars_train.tgz in {downloads}")

    outcome, _ = run(source, tmp_path)

    assert supplied.exists() and not (tmp_path / "toy/images").exists()
    assert "was not unpacked: delete or replace it" in outcome.errors[0]
    assert outcome.manual == f"put cars_train.tgz in {tmp_path / dl.DOWNLOADS / 'toy'}"


def test_user_supplied_good_file_is_verified_and_unpacked(tmp_path):
    archive = tar_gz({"cars_train/00001.jpg": b"car"})
    supplied = tmp_path / dl.DOWNLOADS / "toy" / "cars_train.tgz"
    supplied.parent.mkdir(parents=True)
    supplied.write_bytes(archive)
    source = Source("toy", (Item(("images/",), (Mirror("cars_train.tgz", md5=md5(archive),
                                                      moves=(("cars_train", "images"),)),)),))
    outcome, log = run(source, tmp_path)
    assert (tmp_path / "toy/images/00001.jpg").read_bytes() == b"car"
    assert outcome.errors == [] and outcome.manual == "" and "md5 verified" in log


def test_archive_without_expected_entry_places_nothing(server, tmp_path):
    archive = tar_gz({"images/1.jpg": b"1"})
    server.store["/a.tar.gz"] = archive
    source = Source("toy", (Item(("images/", "meta/"), (Mirror(
        "a.tar.gz", url=server.url("/a.tar.gz"), md5=md5(archive),
        moves=(("images", "images"), ("meta", "meta"))),)),))
    outcome, _ = run(source, tmp_path)
    assert "a.tar.gz has no 'meta' (its top level holds: images)" in outcome.errors[0]
    assert "The download was deleted" in outcome.errors[0] and "save http" not in outcome.errors[0]
    assert not (tmp_path / "toy/images").exists() and not (tmp_path / dl.DOWNLOADS / "toy/a.tar.gz").exists()
    assert leftovers(tmp_path) == []


def test_tar_member_escaping_the_folder_is_refused(server, tmp_path):
    archive = tar_gz({"images/1.jpg": b"1", "../../evil.txt": b"evil"})
    server.store["/a.tar.gz"] = archive
    source = Source("toy", (Item(("images/",), (Mirror(
        "a.tar.gz", url=server.url("/a.tar.gz"), md5=md5(archive), moves=(("images", "images"),)),)),))
    outcome, _ = run(source, tmp_path)
    assert "cannot unpack a.tar.gz" in outcome.errors[0]
    assert not list(tmp_path.rglob("evil.txt")) and not (tmp_path / "toy/images").exists()
    assert leftovers(tmp_path) == []


def link_source(server, archive: bytes, moves=(("images", "images"),), provides=("images/",)) -> Source:
    server.store["/a.tar.gz"] = archive
    return Source("toy", (Item(provides, (Mirror("a.tar.gz", url=server.url("/a.tar.gz"), md5=md5(archive),
                                                 moves=moves),)),))


@pytest.mark.parametrize("prefix, moves", [
    # A wrapping top-level folder is skipped when moving: every entry ends one level higher.
    ("wrap/", (("images", "images"),)),
    # A "dir/*" move: pkg/images/a -> images/a, one level up.
    ("pkg/", (("pkg/*", ""),)),
])
def test_link_that_escapes_once_installed_is_refused_and_the_download_deleted(server, tmp_path, prefix, moves):
    """The link stays inside the staging folder while unpacking (tarfile accepts it) and would point at
    ROOT/secret.txt, outside the dataset folder, once installed one level higher."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the dataset folder")
    link = "../../../secret.txt"
    archive = tar_gz({f"{prefix}images/a/1.jpg": b"1", f"{prefix}zz/z.txt": b"z"},
                             {f"{prefix}images/a/evil": ("sym", link)})
    outcome, _ = run(link_source(server, archive, moves), tmp_path)

    assert len(outcome.errors) == 1
    assert f"a.tar.gz is unsafe: its link 'images/a/evil' -> '{link}'" in outcome.errors[0]
    assert "The download was deleted and nothing from it was installed" in outcome.errors[0]
    assert "save http" not in outcome.errors[0]  # no advice to fetch the same bad file by hand
    assert not (tmp_path / "toy/images").exists() and not (tmp_path / "toy/zz").exists()
    assert not (tmp_path / dl.DOWNLOADS / "toy" / "a.tar.gz").exists()
    assert leftovers(tmp_path) == [] and secret.read_text() == "outside the dataset folder"


def test_chained_links_that_escape_are_refused(server, tmp_path):
    """Read as text, images/a/evil -> ../up/../x stays in images/; followed through images/up -> .. it ends in the
    staging folder while unpacking (accepted by tarfile) and in ROOT once installed one level higher."""
    archive = tar_gz({"wrap/images/a/1.jpg": b"1"},
                             {"wrap/images/up": ("sym", ".."), "wrap/images/a/evil": ("sym", "../up/../x")})
    outcome, _ = run(link_source(server, archive), tmp_path)
    assert "its link 'images/a/evil' -> '../up/../x'" in outcome.errors[0]
    assert not (tmp_path / "toy/images").exists() and leftovers(tmp_path) == []


def test_links_that_stay_inside_the_dataset_folder_are_installed(server, tmp_path):
    archive = tar_gz({"images/a/1.jpg": b"1", "meta/m.txt": b"m"},
                             {"images/b": ("sym", "a"), "images/a/m.txt": ("sym", "../../meta/m.txt"),
                              "images/a/copy.jpg": ("hard", "images/a/1.jpg")})
    source = link_source(server, archive, (("images", "images"), ("meta", "meta")), ("images/", "meta/"))
    outcome, _ = run(source, tmp_path)
    images = tmp_path / "toy/images"
    assert outcome.errors == []
    assert (images / "b/1.jpg").read_bytes() == b"1" and (images / "a/m.txt").read_bytes() == b"m"
    assert os.readlink(images / "a/m.txt") == "../../meta/m.txt"
    assert (images / "a/copy.jpg").read_bytes() == b"1" and not (images / "a/copy.jpg").is_symlink()


def test_hard_link_to_a_file_outside_is_refused(server, tmp_path):
    archive = tar_gz({"images/a/1.jpg": b"1"}, {"images/a/evil": ("hard", "../../../etc/passwd")})
    outcome, _ = run(link_source(server, archive), tmp_path)
    assert "cannot unpack a.tar.gz" in outcome.errors[0] and "nothing from it was installed" in outcome.errors[0]
    assert not (tmp_path / "toy/images").exists()
    assert not (tmp_path / dl.DOWNLOADS / "toy" / "a.tar.gz").exists() and leftovers(tmp_path) == []


def test_refused_user_supplied_archive_is_kept_with_advice(tmp_path):
    archive = tar_gz({"cars_train/1.jpg": b"1"}, {"cars_train/evil": ("sym", "../../x")})
    supplied = tmp_path / dl.DOWNLOADS / "toy" / "cars_train.tgz"
    supplied.parent.mkdir(parents=True)
    supplied.write_bytes(archive)
    source = Source("toy", (Item(("images/",), (Mirror("cars_train.tgz", md5=md5(archive),
                                                      moves=(("cars_train", "images"),)),)),))
    outcome, _ = run(source, tmp_path)
    assert "cannot unpack cars_train.tgz: 'cars_train/evil' would link to" in outcome.errors[0]
    assert f"Nothing from {supplied} was installed: delete or replace it" in outcome.errors[0]
    assert supplied.read_bytes() == archive and not (tmp_path / "toy/images").exists()


def test_html_page_instead_of_drive_file_is_refused(tmp_path):
    page = b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>"
    source = Source("toy", (Item(("split_zhou_Toy.json",), (Mirror("split_zhou_Toy.json", gdrive_id="ID"),)),))
    outcome, _ = run(source, tmp_path, gdrive=drive({"ID": page}, []))
    assert "is a web page, not the file" in outcome.errors[0]
    assert "https://drive.google.com/file/d/ID/view" not in outcome.errors[0]  # a refusal, not a network error
    assert not (tmp_path / "toy/split_zhou_Toy.json").exists() and leftovers(tmp_path) == []


def test_failed_drive_download_says_how_to_fetch_by_hand(tmp_path):
    source = Source("toy", (Item(("split_zhou_Toy.json",), (Mirror("split_zhou_Toy.json", gdrive_id="ID"),)),))
    outcome, _ = run(source, tmp_path, gdrive=drive({}, []))
    target = tmp_path / dl.DOWNLOADS / "toy" / "split_zhou_Toy.json"
    assert f"By hand: save https://drive.google.com/file/d/ID/view as {target}, then rerun." in outcome.errors[0]


@pytest.mark.parametrize("split, message", [
    ({"train": [["a.jpg", 0, "a"]], "val": [], "test": [["b.jpg", 1, "b"]]}, "non-empty 'train', 'val', 'test'"),
    ({"train": [["a.jpg", "0", "a"]], "val": [["a.jpg", 0, "a"]], "test": [["b.jpg", 1, "b"]]},
     "is not [relative_path, label, classname]"),
])
def test_malformed_split_file_is_refused(tmp_path, split, message):
    path = tmp_path / "split_zhou_X.json"
    path.write_text(json.dumps(split))
    with pytest.raises(dl.ChecksumError, match=re.escape(message)):
        dl.check_content(path, path.name)


def test_classnames_needs_exactly_1000_wnid_lines(tmp_path):
    path = tmp_path / "classnames.txt"
    lines = [f"n{i:08d} class {i}" for i in range(1000)]
    path.write_text("\n".join(lines))
    dl.check_content(path, "classnames.txt")
    path.write_text("\n".join(lines[:999]))
    with pytest.raises(dl.ChecksumError, match="it has 999 lines"):
        dl.check_content(path, "classnames.txt")


# --------------------------------------------------------------------------- moves and mirrors

def test_inner_archive_glob_move_and_wrapping_folder(server, tmp_path):
    inner = tar_gz({"data/variants.txt": b"A320", "data/images/1.jpg": b"jpg"})
    outer = zip_bytes({"pkg/inner.tar.gz": inner, "pkg/README": b"r"})
    parts = zip_bytes({"Partitions/ClassName.txt": b"/a/abbey"})
    server.store.update({"/outer.zip": outer, "/parts.zip": parts})
    source = Source("toy", (
        Item(("images/", "variants.txt"), (Mirror("outer.zip", url=server.url("/outer.zip"), md5=md5(outer),
                                                  inner="pkg/inner.tar.gz", moves=(("data/*", ""),)),)),
        Item(("ClassName.txt",), (Mirror("parts.zip", url=server.url("/parts.zip"),
                                         moves=(("ClassName.txt", "ClassName.txt"),)),)),
    ))
    outcome, log = run(source, tmp_path)
    assert outcome.errors == []
    assert (tmp_path / "toy/variants.txt").read_bytes() == b"A320"
    assert (tmp_path / "toy/images/1.jpg").read_bytes() == b"jpg"
    assert (tmp_path / "toy/ClassName.txt").read_bytes() == b"/a/abbey"
    assert not (tmp_path / "toy/README").exists() and leftovers(tmp_path) == []


def test_next_mirror_is_used_after_a_404(server, tmp_path):
    archive = tar_gz({"2750/AnnualCrop/AnnualCrop_1.jpg": b"crop"})
    server.store["/mirror2.tar.gz"] = archive
    source = Source("toy", (Item(("images/",), (
        Mirror("first.tar.gz", url=server.url("/gone.tar.gz"), moves=(("2750", "images"),)),
        Mirror("second.tar.gz", url=server.url("/mirror2.tar.gz"), md5=md5(archive),
               moves=(("2750", "images"),), note="second mirror"),
    )),))
    outcome, log = run(source, tmp_path)
    assert (tmp_path / "toy/images/AnnualCrop/AnnualCrop_1.jpg").read_bytes() == b"crop"
    assert len(outcome.errors) == 1 and "HTTP 404" in outcome.errors[0]
    assert "note      second mirror" in log


def test_present_entries_are_kept_not_overwritten(server, tmp_path):
    (tmp_path / "toy/images").mkdir(parents=True)
    (tmp_path / "toy/images/mine.jpg").write_bytes(b"mine")
    archive = tar_gz({"images/1.jpg": b"1", "meta/m.txt": b"m"})
    server.store["/a.tar.gz"] = archive
    source = Source("toy", (Item(("images/", "meta/"), (Mirror(
        "a.tar.gz", url=server.url("/a.tar.gz"), md5=md5(archive),
        moves=(("images", "images"), ("meta", "meta"))),)),))
    run(source, tmp_path)
    assert sorted(p.name for p in (tmp_path / "toy/images").iterdir()) == ["mine.jpg"]
    assert (tmp_path / "toy/meta/m.txt").read_bytes() == b"m"


def test_imagenet_classnames_are_copied_instead_of_downloaded(tmp_path):
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "imagenet/classnames.txt").write_text("n01440764 tench\n")
    outcome = dl.prepare(SOURCES["imagenet_a"], LAYOUTS["imagenet_a"], tmp_path, quiet=True,
                         downloaders=dl.Downloaders(http=_offline_http, gdrive=no_download),
                         log=lambda line: None)
    assert (tmp_path / "imagenet-adversarial/classnames.txt").read_text() == "n01440764 tench\n"
    assert outcome.missing == [f"{tmp_path}/imagenet-adversarial/imagenet-a/"]


# --------------------------------------------------------------------------- layout

def test_missing_paths_lists_exactly_what_is_absent(tmp_path):
    pets = tmp_path / "oxford_pets"
    (pets / "images").mkdir(parents=True)  # empty folder: still missing
    (pets / "split_zhou_OxfordPets.json").write_text("{}")
    assert missing_paths(tmp_path, "oxford_pets") == [f"{pets}/images/"]
    (pets / "images/Abyssinian_1.jpg").write_bytes(b"x")
    assert missing_paths(tmp_path, "OxfordPets") == []
    assert missing_optional(tmp_path, "oxford_pets") == [f"{pets}/annotations/"]
    (pets / "split_zhou_OxfordPets.json").write_text("")  # empty file: missing
    assert missing_paths(tmp_path, "oxford-pets") == [str(pets / "split_zhou_OxfordPets.json")]


def test_fgvc_layout_needs_the_official_lists(tmp_path):
    folder = tmp_path / "fgvc_aircraft"
    (folder / "images").mkdir(parents=True)
    (folder / "images/1.jpg").write_bytes(b"x")
    (folder / "variants.txt").write_text("A320\n")
    assert missing_paths(tmp_path, "FGVCAircraft") == [
        str(folder / name) for name in ("images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")
    ]


def test_names_resolve_and_unknown_names_suggest(tmp_path):
    assert find_layout("DescribableTextures").folder == "dtd"
    assert find_layout("caltech-101").name == "caltech101"
    assert find_layout("imagenet-adversarial").registered == "ImageNetA"
    with pytest.raises(UnknownDatasetError, match="Did you mean 'oxford_flowers'"):
        find_layout("oxford_flower")
    assert fetch_command("/data", "EuroSAT") == "python -m datasets.download eurosat --root /data"


def test_coop_folder_names():
    folders = {name: layout.folder for name, layout in LAYOUTS.items()}
    assert folders == {
        "imagenet": "imagenet", "caltech101": "caltech-101", "oxford_pets": "oxford_pets",
        "stanford_cars": "stanford_cars", "oxford_flowers": "oxford_flowers", "food101": "food-101",
        "fgvc_aircraft": "fgvc_aircraft", "sun397": "sun397", "dtd": "dtd", "eurosat": "eurosat",
        "ucf101": "ucf101", "imagenetv2": "imagenetv2", "imagenet_sketch": "imagenet-sketch",
        "imagenet_a": "imagenet-adversarial", "imagenet_r": "imagenet-rendition",
    }


# --------------------------------------------------------------------------- the source table

def test_source_table_is_consistent():
    assert set(SOURCES) == set(LAYOUTS)
    for name, source in SOURCES.items():
        layout = LAYOUTS[name]
        provided = {path for item in source.items for path in item.provides}
        assert set(layout.required) <= provided, name
        assert provided <= set(layout.required) | set(layout.optional), name
        needs_person = any(not any(m.url or m.gdrive_id for m in item.mirrors) for item in source.items)
        assert bool(source.manual) == needs_person, name
        for item in source.items:
            files = [m.file for m in item.mirrors]
            assert len(files) == len(set(files)), name  # a .part file belongs to exactly one mirror
            for m in item.mirrors:
                assert not (m.url and m.gdrive_id), m
                assert not m.url or m.url.startswith(("http://", "https://")), m
                assert re.fullmatch(r"([0-9a-f]{32})?", m.md5) and re.fullmatch(r"([0-9a-f]{64})?", m.sha256), m
                assert bool(m.moves) == dl.is_archive(m.file), m
                assert m.moves or len(item.provides) == 1, m
                assert not m.inner or dl.is_archive(m.inner), m
                assert all(not src.startswith("/") and ".." not in src for src, _ in m.moves), m


def test_coop_split_files_come_from_coop_drive():
    for name, layout in LAYOUTS.items():
        for split in (p for p in layout.required if p.startswith("split_zhou_")):
            [item] = [i for i in SOURCES[name].items if i.provides == (split,)]
            assert item.mirrors[0].gdrive_id and re.fullmatch(r"[\w-]{25,40}", item.mirrors[0].gdrive_id)


# --------------------------------------------------------------------------- command line

def test_check_reports_missing_and_exit_code(tmp_path, capsys):
    assert dl.main(["--check", "dtd", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path}/dtd/images/" in out and f"{tmp_path}/dtd/split_zhou_DescribableTextures.json" in out
    assert f"fix: python -m datasets.download dtd --root {tmp_path}" in out

    (tmp_path / "dtd/images/banded").mkdir(parents=True)
    (tmp_path / "dtd/images/banded/1.jpg").write_bytes(b"x")
    split = {"train": [["banded/1.jpg", 0, "banded"]], "val": [["banded/1.jpg", 0, "banded"]],
             "test": [["banded/2.jpg", 0, "banded"], ["dotted/3.jpg", 1, "dotted"]]}
    (tmp_path / "dtd/split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    assert dl.main(["--check", "dtd", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "2 images listed in the split file do not exist" in out
    assert f"{tmp_path}/dtd/images/banded/2.jpg" in out and f"{tmp_path}/dtd/images/dotted/3.jpg" in out

    (tmp_path / "dtd/images/banded/2.jpg").write_bytes(b"x")
    (tmp_path / "dtd/images/dotted").mkdir()
    (tmp_path / "dtd/images/dotted/3.jpg").write_bytes(b"x")
    assert dl.main(["--check", "dtd", "--root", str(tmp_path)]) == 0
    assert "dtd: complete" in capsys.readouterr().out


def test_unreadable_split_file_makes_the_check_fail_with_advice(tmp_path, capsys):
    (tmp_path / "eurosat/2750/Forest").mkdir(parents=True)
    (tmp_path / "eurosat/2750/Forest/1.jpg").write_bytes(b"x")
    (tmp_path / "eurosat/split_zhou_EuroSAT.json").write_text('{"train": []}')
    assert dl.main(["--check", "eurosat", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "is not a readable CoOp split file (KeyError" in out
    assert f"delete it and rerun 'python -m datasets.download eurosat --root {tmp_path}'" in out


def test_stanford_cars_split_paths_are_relative_to_the_dataset_folder(tmp_path):
    cars = tmp_path / "stanford_cars"
    (cars / "cars_train").mkdir(parents=True)
    (cars / "cars_train/00001.jpg").write_bytes(b"x")
    split = {"train": [["cars_train/00001.jpg", 0, "2012 Tesla Model S"]], "val": [],
             "test": [["cars_test/00001.jpg", 0, "2012 Tesla Model S"]]}
    (cars / "split_zhou_StanfordCars.json").write_text(json.dumps(split))
    assert missing_split_files(tmp_path, "StanfordCars") == [f"{cars}/cars_test/00001.jpg"]


def test_unknown_name_is_a_usage_error_with_suggestion(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dl.main(["eurosta", "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "Unknown dataset 'eurosta'. Did you mean 'eurosat'?" in capsys.readouterr().err


def test_stanford_cars_offline_prints_manual_steps(tmp_path, capsys):
    calls: list[str] = []
    offline = dl.Downloaders(http=_offline_http, gdrive=drive({}, calls))
    assert dl.main(["stanford_cars", "--root", str(tmp_path), "--quiet"], downloaders=offline) == 1
    out = capsys.readouterr().out
    downloads = tmp_path / dl.DOWNLOADS / "stanford_cars"
    assert f"put them, under these exact names, in {downloads}/" in out
    assert "cars_train.tgz                   md5 065e5b463ae28d29e77c1b4b166cfe61" in out
    assert f"{tmp_path}/stanford_cars/cars_train/" in out
    assert calls == ["1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"]


def _offline_http(url: str, dest: Path, *, quiet: bool) -> None:
    raise dl.DownloadError(f"{url}: no network in tests")


def test_list_shows_state_on_disk(tmp_path, capsys):
    (tmp_path / "eurosat/2750/Forest").mkdir(parents=True)
    (tmp_path / "eurosat/2750/Forest/1.jpg").write_bytes(b"x")
    assert dl.main(["--list", "--root", str(tmp_path)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "missing 1 of 2" in rows["eurosat"] and "absent" in rows["dtd"]
    assert "partly manual" in rows["imagenet"] and "partly manual" in rows["stanford_cars"]
