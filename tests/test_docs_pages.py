"""Documentation that runs, continued: every command block of the method pages (``docs/*.md``) and the README.md and
DATASETS.md blocks outside the sections of ``tests/test_docs.py``, run by bash as printed with that module's
mechanism (a fresh copy of the repository, ``$DATA`` a scratch data root, each substitution asserted to occur).

The :data:`PAGES` substitutions, beyond the data, backbone and length ones of ``tests/test_docs.py`` (CoOp's
benchmarks and the released ViT-B/16 / RN50 configs give way to ToyTinted and each method's ``toy.yaml``; 1 epoch,
2 shots per class, ``--load-epoch`` the epoch trained):

- ImageNet protocols (``scripts/xd.sh``, ``scripts/dg.sh``) and the 11-dataset sweep (``base2new.sh ... all``)
  cannot run without those datasets, and their source dataset is fixed by the protocol: they run with the scripts'
  documented ``DRY_RUN=1``, which resolves every config and prints the commands (asserted); RESTORE's (with
  ``OUTPUT=output/protocols``) would otherwise find the toy runs its page's hand-run commands left at the protocol's
  own paths, and rightly refuse them as not its runs;
- a run directory a page names but does not train here (``RUN_DIR``, a CoOp RN50 run) is one its own page's
  earlier block trained, or a 1-epoch toy run trained by the test with the options the page names;
- downloads fail offline: ``datasets.download`` then prints each file's "By hand: save URL as PATH" and exits 1
  (incomplete), which the test accepts (``|| [ $? -eq 1 ]``) and asserts; offline retries make ``all`` take
  minutes, so that test is ``slow``;
- toyclip's pretraining (about 15 minutes) runs 2 steps, evaluated as the full run is; the second command writes
  into the copy instead of the machine's shared ``/tmp``.
"""
import json
import subprocess
from pathlib import Path

import mktestdocs
import pytest

from tests.test_docs import REPO, SUBSTITUTIONS, blocks, copy_repo, run_block

TOY = "configs/datasets/toy_tinted.yaml"
SHORT = "DATASET.NUM_SHOTS 2 OPTIM.MAX_EPOCH 1"
B2N_TOY = f"toy_tinted 1 toy {SHORT}"
RESTORE_RUN = "output/base2new/train_base/dtd/shots_16/RESTORE/vit_b16_c2_ep10_batch4_2ctx/seed1"
NEMESIS_RUNS = {"coop": "TRAINER.NEMESIS.A 0.0", "pun": "TRAINER.NEMESIS.BETA 1.0", "pan": "TRAINER.NEMESIS.BETA 0.0"}

# (file, section, block number) -> [(printed text, text run)], as in tests/test_docs.py.
PAGES = {
    ("docs/APLE.md", "Running", 0): [
        ("APLe oxford_pets 1 vit_b16_c2_ep5_batch4_2+2ctx", f"APLe {B2N_TOY}"),
        ("scripts/xd.sh APLe", "DRY_RUN=1 scripts/xd.sh APLe"),
        ("scripts/dg.sh APLe", "DRY_RUN=1 scripts/dg.sh APLe"),
        ("configs/trainers/APLe/vit_b16_c2_ep5_batch4_2+2ctx.yaml", "configs/trainers/APLe/toy.yaml"),
        ("configs/datasets/oxford_pets.yaml", TOY),
        ("DATASET.NUM_SHOTS 16", SHORT),
    ],
    ("docs/LAMM.md", "Continual learning", 0): [
        ("configs/datasets/oxford_pets.yaml", TOY),
        ("configs/trainers/LAMM/continual_vit_b16_ep50_ctxv1.yaml", "configs/trainers/LAMM/toy.yaml"),
        ("--seed 1", "--seed 1 --shots 2 OPTIM.MAX_EPOCH 1"),
    ],
    ("docs/LAMM.md", "Protocols and configs", 0): [
        ("configs/datasets/dtd.yaml", TOY),
        ("configs/trainers/LAMM/vit_b16_ep50_ctxv1.yaml", "configs/trainers/LAMM/toy.yaml"),
        ("DATASET.NUM_SHOTS 16", SHORT),
    ],
    ("docs/LAMM.md", "Toy demo", 0): [
        ("DATASET.NUM_SHOTS 16", "DATASET.NUM_SHOTS 16 OPTIM.MAX_EPOCH 1"),
        ("lamm_continual --seed 1", "lamm_continual --seed 1 OPTIM.MAX_EPOCH 1"),
    ],
    ("docs/NEMESIS.md", "Published settings and configs (`configs/trainers/Nemesis/`)", 0): [
        ("configs/datasets/dtd.yaml", TOY),
        ("configs/trainers/Nemesis/rn50_pan.yaml", "configs/trainers/Nemesis/toy.yaml"),
        ("DATASET.NUM_SHOTS 16", SHORT),
        ("Nemesis dtd 1 vit_b16_c4_ep10_batch1_ctxv1_pan_a20", f"Nemesis {B2N_TOY}"),
        ("scripts/dg.sh Nemesis", "DRY_RUN=1 scripts/dg.sh Nemesis"),
    ],
    ("docs/NEMESIS.md", "The Low-Norm Effect: corruption study and figures", 0): [
        ("output/fewshot/oxford_pets/CoOp/rn50_ep50_1shots/seed1 --load-epoch 50",
         "output/fewshot/dtd/Nemesis/rn50_pan_16shots/seed1 --load-epoch 1"),
    ],
    ("docs/NEMESIS.md", "The Low-Norm Effect: corruption study and figures", 1): [
        ("RUN_COOP RUN_PUN RUN_PAN", " ".join(f"output/lownorm/{name}" for name in NEMESIS_RUNS)),
    ],
    ("docs/PRECISION.md", "CoOp on the toy, three readings (CPU)", 0): [
        ("DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base", f"{SHORT} DATASET.SUBSAMPLE_CLASSES base"),
        ("--load-epoch 16", "--load-epoch 1"),
        ("DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES new", "DATASET.NUM_SHOTS 2 DATASET.SUBSAMPLE_CLASSES new"),
    ],
    ("docs/RESTORE.md", "Running it", 0): [
        ("configs/datasets/dtd.yaml", TOY),
        ("configs/trainers/RESTORE/vit_b16_c2_ep10_batch4_2ctx.yaml", "configs/trainers/RESTORE/toy.yaml"),
        ("DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base", f"{SHORT} DATASET.SUBSAMPLE_CLASSES base"),
        ("--load-epoch 10 DATASET.NUM_SHOTS 16", "--load-epoch 1 DATASET.NUM_SHOTS 2"),
        ("scripts/base2new.sh RESTORE all", "DRY_RUN=1 OUTPUT=output/protocols scripts/base2new.sh RESTORE all"),
        ("scripts/xd.sh RESTORE", "DRY_RUN=1 OUTPUT=output/protocols scripts/xd.sh RESTORE"),
        ("scripts/dg.sh RESTORE", "DRY_RUN=1 OUTPUT=output/protocols scripts/dg.sh RESTORE"),
        ("scripts/base2new.sh RESTORE dtd", "DRY_RUN=1 OUTPUT=output/protocols scripts/base2new.sh RESTORE dtd"),
    ],
    ("docs/RESTORE.md", "Feature-shift analysis (`tools/feature_shift.py`)", 0): [],
    ("docs/TOY.md", "toyclip (`clip/toyclip.py`, `tools/pretrain_toyclip.py`)", 0): [
        ("pretrain_toyclip                      #", "pretrain_toyclip --steps 2 --warmup 1 #"),
        ("--out /tmp/toyclip.pt --seed 1", "--out toyclip_seed1.pt --seed 1 --steps 2 --warmup 1"),
    ],
    ("README.md", "Benchmarks", 0): [
        ("--eval-images 128 --steps 5", "--eval-images 16 --steps 1 --warmup 1"),
        (' MODEL.BACKBONE.NAME random:ViT-B-16 INPUT.SIZE "(224, 224)"', ""),
    ],
    ("DATASETS.md", "Datasets", 0): [
        ("oxford_pets eurosat --root $DATA", "oxford_pets eurosat --root $DATA 2>&1 || [ $? -eq 1 ]"),
        ("all --root $DATA", "all --root $DATA 2>&1 || [ $? -eq 1 ]"),
        ("--check --root $DATA", "--check --root $DATA || [ $? -eq 1 ]"),
    ],
}
# Blocks another test module runs as printed: (doc, section, block number) -> that test.
RUN_ELSEWHERE = {
    ("docs/ADDING_A_METHOD.md", "Worked example", 0):
        "tests/test_method_contract.py: test_the_guides_worked_example_is_first_class_and_trains_one_toy_epoch",
}
PAGE_FILES = ["README.md", "DATASETS.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


def run_page(clone: Path, doc: str, title: str, number: int = 0, timeout: int = 300) -> str:
    return run_block(clone, doc, title, number, timeout=timeout, table=PAGES)


def test_every_block_is_covered():
    """Every bash and python block of README.md, DATASETS.md and docs/*.md is one block of this module's or
    tests/test_docs.py's table, or of ``RUN_ELSEWHERE``, so a new block cannot go untested."""
    covered = [blocks(doc, title)[n][1].strip() for doc, title, n in [*SUBSTITUTIONS, *PAGES, *RUN_ELSEWHERE]]
    printed = [code.strip() for doc in PAGE_FILES for lang in ("bash", "python")
               for code in mktestdocs.grab_code_blocks((REPO / doc).read_text(), lang=lang)]
    assert sorted(covered) == sorted(printed)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("pages"))


def results(clone: Path, run: str) -> dict:
    return json.loads((clone / run / "results.json").read_text())


def test_aple(clone):
    out = run_page(clone, "docs/APLE.md", "Running")
    assert "vit_b16_c2_ep2_batch4_2+2ctx_cross_datasets" in out and "imagenet_sketch" in out
    assert [results(clone, run.relative_to(clone))["dataset"]  # overrides put the run under output/variants/
            for run in clone.glob("output/variants/*/base2new/test_new/toy_tinted/shots_16/APLe/toy/seed1")]
    assert results(clone, "output/aple_pets_s1")["dataset"]


def test_lamm(clone):
    run_page(clone, "docs/LAMM.md", "Continual learning")
    run_page(clone, "docs/LAMM.md", "Protocols and configs")
    run_page(clone, "docs/LAMM.md", "Toy demo")
    for folder in ("output/continual/oxford_pets/seed1", "output/toy/lamm_continual"):
        assert (clone / folder / "continual.json").is_file()
    assert results(clone, "output/fewshot/dtd/LAMM/16shots/seed1")["dataset"]
    assert results(clone, "output/toy/lamm")["dataset"]


def test_nemesis(clone):
    out = run_page(clone, "docs/NEMESIS.md", "Published settings and configs (`configs/trainers/Nemesis/`)")
    assert "rn50_pun_a10_ep50" in out and "imagenet_r" in out
    run_page(clone, "docs/NEMESIS.md", "The Low-Norm Effect: corruption study and figures", 0)
    assert (clone / "output/fewshot/dtd/Nemesis/rn50_pan_16shots/seed1/corruption.json").is_file()
    for name, opts in NEMESIS_RUNS.items():
        subprocess.run([str(clone / ".venv/bin/python"), "train.py", "--root", str(clone.parent / "data"),
                        "--seed", "1", "--trainer", "Nemesis", "--dataset-config-file", TOY, "--config-file",
                        "configs/trainers/Nemesis/toy.yaml", "--output-dir", f"output/lownorm/{name}",
                        *SHORT.split(), *opts.split()], cwd=clone, check=True, capture_output=True)
    run_page(clone, "docs/NEMESIS.md", "The Low-Norm Effect: corruption study and figures", 1)
    assert (clone / "lownorm.png").stat().st_size > 0


def test_precision(clone):
    run_page(clone, "docs/PRECISION.md", "CoOp on the toy, three readings (CPU)")
    assert results(clone, "output/precision/fp16/new/seed1")["dataset"]
    assert (clone / "output/precision/fp16/base/seed1/prompt_learner/model.pth.tar-1").is_file()


def test_restore(clone):
    out = run_page(clone, "docs/RESTORE.md", "Running it")
    assert "TRAINER.RESTORE.FS_LOSS_R 0.5" in out and "vit_b16_c2_ep10_batch4_2ctx_feature" in out
    assert results(clone, "output/base2new/test_new/dtd/shots_16/RESTORE/vit_b16_c2_ep10_batch4_2ctx/seed1")
    run_page(clone, "docs/RESTORE.md", "Feature-shift analysis (`tools/feature_shift.py`)")
    assert any((clone / "output/feature_shift/dtd").iterdir())


def test_benchmarks(clone):
    out = run_page(clone, "README.md", "Benchmarks")
    assert "train_step_over_model_cost" in out


def test_toyclip_pretraining(tmp_path):
    """In a copy of its own, as the first command replaces the committed toyclip."""
    fresh = copy_repo(tmp_path / "repo")
    committed = (fresh / "clip/pretrained/toyclip.pt").read_bytes()
    run_page(fresh, "docs/TOY.md", "toyclip (`clip/toyclip.py`, `tools/pretrain_toyclip.py`)", timeout=600)
    assert (fresh / "clip/pretrained/toyclip.pt").read_bytes() != committed
    assert (fresh / "toyclip_seed1.pt").is_file()


@pytest.mark.slow
def test_dataset_downloads(clone):
    out = run_page(clone, "DATASETS.md", "Datasets", timeout=1800)
    assert "oxford_pets" in out and "By hand: save" in out and "INCOMPLETE" in out
