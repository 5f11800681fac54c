"""Documentation that runs: every command block of README.md's "Quick start", "Using it" and "Your own data" and of
DATASETS.md's "Your own images (`Folder`)", extracted with mktestdocs and run by bash as printed.

The commands run in a fresh copy of the repository's files (tracked and new, not ignored; ``.venv`` linked), so
outputs, toy data and caches stay out of the working tree, with ``.venv/bin`` first on PATH (the README's
activated environment), ``$DATA`` a scratch data root and ``$CLIP_CACHE_DIR`` a scratch cache. A failing command
fails the test with its output. The only changes to the printed text are the :data:`SUBSTITUTIONS` of each block,
each asserted to occur in it (a doc edit that makes one stale fails loudly instead of running something else):

- data: OxfordPets, and the user's ``photos/`` of red foxes, arctic foxes and grey wolves, cannot be downloaded
  here; the toy world's ToyTinted (rendered from code) and a generated folder of those three classes stand in;
- backbone: ViT-B/16 weights cannot be downloaded here; ``configs/trainers/CoOp/toy.yaml`` (toyclip, the shipped
  tiny CLIP) stands in for ``vit_b16_ep50.yaml``;
- length: each training command gets ``OPTIM.MAX_EPOCH 1`` (``--load-epoch 50`` becomes 1), and on ToyTinted 2
  shots per class (the one-run commands, and the base-to-new run as an override, so its folder still reads
  ``shots_16``) or 1 (the few-shot run, one of the protocol's own shot counts) instead of 16; the user's folder
  keeps 16 (it has 10 training images per class). The demo runs its own CI mode (``--quick``: 1 epoch) for CoOp on
  seed 1, and ``bash scripts/test.sh`` (the suite cannot run inside itself) runs on one test module, which checks
  the script and the environment it sets up.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mktestdocs
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TOY_COOP = "configs/trainers/CoOp/toy.yaml"
OWN_CLASSES = {"red_fox": (200, 90, 30), "arctic_fox": (235, 235, 240), "grey_wolf": (120, 120, 125)}

# (file, section, block number) -> [(printed text, text run)]; every printed text must occur in its block.
SUBSTITUTIONS = {
    ("README.md", "Quick start", 0): [
        ("bash scripts/demo.sh", "bash scripts/demo.sh --quick --trainers CoOp --seeds 1 --jobs 1"),
        ("bash scripts/test.sh", "bash scripts/test.sh tests/test_registry.py"),
    ],
    ("README.md", "Using it", 0): [
        ("configs/datasets/oxford_pets.yaml", "configs/datasets/toy_tinted.yaml"),
        ("configs/trainers/CoOp/vit_b16_ep50.yaml", TOY_COOP),
        ("DATASET.NUM_SHOTS 16", "DATASET.NUM_SHOTS 2 OPTIM.MAX_EPOCH 1"),
        ("--load-epoch 50", "--load-epoch 1"),
    ],
    ("README.md", "Using it", 1): [
        ("DATA=/path/to/data", "DATA=$DATA"),
        ("CoOp oxford_pets 1 ", "CoOp toy_tinted 1 toy OPTIM.MAX_EPOCH 1 DATASET.NUM_SHOTS 2 "),
        ("CoOp oxford_pets 16 1", "CoOp toy_tinted 1 1 toy OPTIM.MAX_EPOCH 1"),
    ],
    ("README.md", "Using it", 2): [
        ("RUN_DIR [RUN_DIR ...]", "output/oxford_pets/CoOp/seed1"),
    ],
    ("README.md", "Your own data", 0): [
        ("configs/trainers/CoOp/vit_b16_ep50.yaml", TOY_COOP),
        ("DATASET.NUM_SHOTS 16", "DATASET.NUM_SHOTS 16 OPTIM.MAX_EPOCH 1"),
    ],
    ("README.md", "Your own data", 1): [],
    ("DATASETS.md", "Your own images (`Folder`)", 0): [
        ("CoOp folder 1", "CoOp folder 1 toy OPTIM.MAX_EPOCH 1"),
    ],
}


def section(markdown: str, title: str) -> str:
    """The text under the heading ``title`` up to the next heading of the same or a higher level (lines inside
    fenced blocks, such as bash comments, are not headings)."""
    lines, fenced, headings = markdown.splitlines(), False, []
    for i, line in enumerate(lines):
        fenced ^= line.lstrip().startswith("```")
        if not fenced and line.startswith("#"):
            headings.append((i, len(line) - len(line.lstrip("#")), line.lstrip("#").strip()))
    start, level = next((i, lvl) for i, lvl, text in headings if text == title)
    end = next((i for i, lvl, _ in headings if i > start and lvl <= level), len(lines))
    return "\n".join(lines[start:end])


def blocks(doc: str, title: str):
    """``(language, code)`` of each fenced block of a section, in order (bash and python)."""
    text = section((REPO / doc).read_text(), title)
    found = [(lang, code) for lang in ("bash", "python") for code in mktestdocs.grab_code_blocks(text, lang=lang)]
    return sorted(found, key=lambda block: text.index(block[1].strip().splitlines()[0]))


def substituted(doc: str, title: str, number: int, table: dict = SUBSTITUTIONS) -> tuple:
    lang, code = blocks(doc, title)[number]
    for printed, run in table[(doc, title, number)]:
        assert printed in code, f"{doc} {title!r} block {number} no longer contains {printed!r}: update SUBSTITUTIONS"
        code = code.replace(printed, run)
    return lang, code


def test_every_block_is_covered():
    """Each command block of the tested sections has an entry here, so a new block cannot go untested."""
    sections = {(doc, title) for doc, title, _ in SUBSTITUTIONS}
    expected = {(doc, title, i) for doc, title in sections for i in range(len(blocks(doc, title)))}
    assert expected == set(SUBSTITUTIONS)


def copy_repo(root: Path) -> Path:
    """A copy in ``root`` of the repository's files (as a fresh clone with this working tree's changes), ``.venv``
    linked."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, root / rel)
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("clone"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_block(clone: Path, doc: str, title: str, number: int, timeout: int = 300, table: dict = SUBSTITUTIONS) -> str:
    """Run one block of ``table`` in ``clone`` (bash with -euo pipefail, or python); its stdout; a failure fails the
    test."""
    lang, code = substituted(doc, title, number, table)
    env = dict(os.environ, PATH=f"{clone / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               DATA=str(clone.parent / "data"), CLIP_CACHE_DIR=str(clone.parent / "cache"))
    env.pop("PYTHONPATH", None)
    argv = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [str(clone / ".venv/bin/python"), "-c", code]
    started, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{doc} {title!r} block {number}: {time.perf_counter() - started:.1f} s, CPU {children_cpu() - cpu:.1f} s",
          file=sys.stderr)
    assert done.returncode == 0, (f"{doc} {title!r} block {number} failed (exit {done.returncode}):\n{code}\n"
                                  f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-5000:]}")
    return done.stdout


def test_quick_start(clone):
    out = run_block(clone, "README.md", "Quick start", 0)
    assert "HM" in out and "CoOp" in out and "passed" in out
    assert (clone / "output" / "demo-quick" / "results.md").is_file()


def test_using_it(clone):
    run_block(clone, "README.md", "Using it", 0)
    for run in ("oxford_pets/CoOp/seed1", "test_new"):
        assert json.loads((clone / "output" / run / "results.json").read_text())["dataset"]
    run_block(clone, "README.md", "Using it", 1)
    run_block(clone, "README.md", "Using it", 2)
    for figure in ("b2n.png", "fewshot.pdf", "curves.png"):
        assert (clone / figure).stat().st_size > 0


def make_images(folder: Path, rgb, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=95)


@pytest.fixture(scope="module")
def own_data(clone):
    """README "Your own data" run as printed on generated photos of its three classes: its 4 steps, then the open_clip
    snippet on ``fox.jpg``."""
    for i, (name, rgb) in enumerate(OWN_CLASSES.items()):
        make_images(clone / "photos" / name, rgb, 20, seed=i)
    make_images(clone / "new_photos", OWN_CLASSES["red_fox"], 4, seed=10)
    make_images(clone / "new_photos" / "more", OWN_CLASSES["grey_wolf"], 2, seed=11)
    shutil.copy(clone / "new_photos" / "000.jpg", clone / "fox.jpg")
    run_block(clone, "README.md", "Your own data", 0)
    return clone, run_block(clone, "README.md", "Your own data", 1)


def test_your_own_data(own_data):
    clone, printed = own_data
    names = {"red fox", "arctic fox", "grey wolf"}
    records = [json.loads(line) for line in (clone / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all({name for name, _ in r["topk"]} == names for r in records)
    assert (clone / "photos" / "split_zhou_Folder.json").is_file() and (clone / "photos_coop.pt").is_file()
    name, prob = printed.strip().rsplit(" ", 1)
    assert name in names and 1 / 3 <= float(prob) <= 1


def test_datasets_folder(own_data):
    clone, _ = own_data
    run_block(clone, "DATASETS.md", "Your own images (`Folder`)", 0)
    shown = json.loads((clone / "photos_split.json").read_text())
    assert shown["classnames"] == ["arctic fox", "grey wolf", "red fox"]
