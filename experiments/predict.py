"""Classify images with a trained run, an export, or zero-shot CLIP, under any class names.

    python -m tools.predict --model-dir output/mydata/CoOp/seed1 --classname cat --classname "red fox" photos/ --topk 3
    python -m tools.predict --trainer ZeroshotCLIP --backbone ViT-B/16 --classnames-file names.txt 'shots/*.jpg'
    python -m tools.predict --model-dir photos_maple.pt new_photos/

Inputs are image files, folders (searched recursively) and globs, given as arguments or with ``--input PATH``
(repeatable), anywhere on the line. Class names are given with ``--classname NAME``, once per class, and/or
``--classnames-file FILE`` with a name per line: each flag takes exactly one value, so names and inputs cannot be
mistaken for each other whatever their order; an empty name, or a name that is an existing file or folder, is
refused. Without them, the run's own classes are used (its dataset must then be readable), or those stored in a
``tools.export`` file. An export is refused when the backbone weights loaded for it are not those it was made with.
Output, one record per image on stdout, best class first: JSON lines ``{"path": ..., "topk": [[class name,
probability], ...]}`` (default) or CSV (``--format csv``: ``path,class_1,prob_1,...``). Probabilities are the
softmax of the trainer's logits (``model_inference``: CLIP's logit scale times cosine similarity) over the given
classes. Images are batched; a progress bar goes to stderr; a GPU is used when present. Unreadable images
(missing, corrupt, truncated, or decompression bombs, which PIL refuses to open) are reported on stderr and
skipped, the other images are still classified, and the exit status is then 3. Mistakes in the command print one
``error:`` line and exit with status 2.
"""
from __future__ import annotations

import csv
import glob
import json
import logging
import os
import sys
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from datasets.folder import is_image
from engine.data.data_manager import ImageReadError, read_image

from .trained_model import eval_transform, load_run, text_side, zeroshot_trainer

logger = logging.getLogger("predict")


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Image paths from files, folders (recursive, sorted) and globs, in the order given, without repeats."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(d, f) for d, _, files in os.walk(item) for f in files if is_image(f))
        elif os.path.isfile(item):
            found = [item]
        else:
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        if not found:
            raise FileNotFoundError(f"No images found for input {item!r} (a file, a folder of images or a glob).")
        paths += found
    seen = set()
    return [p for p in paths if not (p in seen or seen.add(p))]


class ImageFiles(Dataset):
    """``(image tensor or None, index, error)`` per path; an unreadable image (``read_image``'s ``ImageReadError``,
    or PIL's ``DecompressionBombError`` for an image over twice ``Image.MAX_IMAGE_PIXELS``) yields ``None`` and
    its error, so that it never stops the other images."""

    def __init__(self, paths: Sequence[str], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return self.transform(read_image(self.paths[i])), i, ""
        except ImageReadError as e:
            return None, i, str(e)
        except Image.DecompressionBombError as e:
            return None, i, f"Cannot read image {self.paths[i]} ({e})"


def collate(items):
    good = [(img, i) for img, i, err in items if img is not None]
    bad = [(i, err) for img, i, err in items if img is None]
    images = torch.stack([img for img, _ in good]) if good else None
    return images, [i for _, i in good], bad


@torch.no_grad()
def predict(trainer, paths: Sequence[str], transform, topk: int = 5, batch_size: int = 64, workers: int = 0,
            progress: bool = True) -> Iterator[Tuple[str, Optional[List[Tuple[str, float]]], str]]:
    """``(path, [(class name, probability), ...] best first, error)`` per image, in input order."""
    from tqdm import tqdm

    names = trainer.dm.dataset.classnames
    k = min(topk, len(names))
    loader = DataLoader(ImageFiles(paths, transform), batch_size=batch_size, num_workers=workers, collate_fn=collate)
    text_side(trainer)
    try:
        with tqdm(total=len(paths), unit="img", disable=not progress, file=sys.stderr) as bar:
            for images, idx, bad in loader:
                results = {i: (paths[i], None, err) for i, err in bad}
                if images is not None:
                    probs = trainer.model_inference(images.to(trainer.device)).float().softmax(dim=-1)
                    values, labels = probs.topk(k, dim=-1)
                    for row, i in enumerate(idx):
                        results[i] = (paths[i], [(names[c], float(p)) for p, c in
                                                 zip(values[row].tolist(), labels[row].tolist())], "")
                bar.update(len(results))
                yield from (results[i] for i in sorted(results))
    finally:
        trainer.after_test()


def write_records(records, fmt: str, topk: int, out=None) -> int:
    """Write the predictions (to stdout by default); returns how many images could not be read."""
    out = out or sys.stdout
    failed = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["path"] + [f"{c}_{r}" for r in range(1, topk + 1) for c in ("class", "prob")])
    for path, top, err in records:
        if top is None:
            failed += 1
            print(f"skipped: {err}", file=sys.stderr)
            continue
        if writer:
            writer.writerow([path] + [v for name, p in top for v in (name, f"{p:.6f}")])
        else:
            out.write(json.dumps({"path": path, "topk": [[name, round(p, 6)] for name, p in top]},
                                 ensure_ascii=False) + "\n")
        out.flush()
    return failed


def run_classnames(model_dir: str, opts: Sequence[str]) -> List[str]:
    """The class names a run trained on, from its dataset (used when no class names are given)."""
    from engine.data.data_manager import build_dataset

    from .trained_model import run_config

    try:
        return [c.replace("_", " ") for c in build_dataset(run_config(model_dir, opts)).classnames]
    except Exception as e:  # noqa: BLE001 - any dataset problem: the user can name the classes instead
        raise ValueError(f"Could not read the run's classes from its dataset ({e}). Pass --classname NAME once per "
                         "class, or --classnames-file FILE.") from None


def serving_trainer(classnames: Optional[List[str]], opts: Sequence[str], model_dir: str = "",
                    load_epoch: Optional[int] = None, trainer: str = "", backbone: str = "", config_file: str = ""):
    """(trainer, test-time transform) to serve: the run or export at ``model_dir``, else zero-shot CLIP
    (``trainer`` on ``backbone``); ``classnames`` default to the run's own."""
    if model_dir:
        if not os.path.isfile(model_dir):  # a run directory; an export file stores its class names
            classnames = classnames or run_classnames(model_dir, opts)
        model = load_run(model_dir, classnames, load_epoch, opts)
    elif not (trainer and backbone):
        raise ValueError("Pass --model-dir RUN, or --trainer ZeroshotCLIP --backbone NAME for zero-shot CLIP.")
    elif not classnames:
        raise ValueError("Zero-shot CLIP needs class names: --classname NAME once per class, or --classnames-file "
                         "FILE.")
    else:
        model = zeroshot_trainer(trainer, backbone, classnames, config_file, opts)
    return model, eval_transform(model)
