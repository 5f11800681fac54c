"""Seed-free runs (experiments/seed_free.py): zero-shot methods run once per dataset and split; tables still show them."""
import dataclasses

from tests.test_protocols import settings  # noqa: F401  (fixture)
from tests.test_results import b2n, write_result
from experiments.protocols import expand
from experiments.results import build_tables, render, summarize


def test_zero_shot_runs_once_trained_methods_per_seed(settings):  # noqa: F811
    runs = expand("base2new", ["ZeroshotCLIP", "CoOp"], ["dtd", "oxford_pets"], [1, 2, 3], settings)
    zs = [r for r in runs if r.trainer == "ZeroshotCLIP"]
    coop = [r for r in runs if r.trainer == "CoOp"]
    assert sorted(r.run_id for r in zs) == sorted(
        f"base2new/{phase}/{d}/shots_16/ZeroshotCLIP/vit_b16/seed1" for d in ("dtd", "oxford_pets")
        for phase in ("test_base", "test_new"))
    assert len(coop) == 2 * 2 * 3 and {r.seed for r in coop} == {1, 2, 3}
    # the first requested seed names the run; seed 0 is a seed
    assert {r.seed for r in expand("zeroshot", ["ZeroshotCLIP"], ["dtd"], [0, 5], settings)} == {0}
    # xd/dg: the zero-shot source and targets once as well
    assert {r.seed for r in expand("dg", ["ZeroshotCLIP"], ["imagenetv2"], [1, 2], settings)} == {1}


def test_random_backbones_depend_on_the_seed(settings):  # noqa: F811
    random_bb = dataclasses.replace(settings, backbone="random:ViT-B-16")
    runs = expand("base2new", ["ZeroshotCLIP"], ["dtd"], [1, 2, 3], random_bb)
    assert len(runs) == 2 * 3
    by_opt = dataclasses.replace(settings, opts=("MODEL.BACKBONE.NAME", "random:ViT-B-32"))
    assert len(expand("base2new", ["ZeroshotCLIP"], ["dtd"], [1, 2], by_opt)) == 2 * 2
    toy = dataclasses.replace(settings, backbone="toyclip")
    assert len(expand("base2new", ["ZeroshotCLIP"], ["dtd"], [1, 2], toy)) == 2


def test_tables_show_seed_free_rows_without_warnings(tmp_path):
    for seed in (1, 2, 3):
        b2n(tmp_path, "CoOp", "dtd", "DescribableTextures", seed, 90.0 + seed, 40.0 + seed)
    b2n(tmp_path, "ZeroshotCLIP", "dtd", "DescribableTextures", 1, 70.0, 60.0)
    s = summarize(tmp_path)
    assert not [w for w in s.warnings if "ZeroshotCLIP" in w]
    zs = next(r for r in s.rows["base2new"] if r.trainer == "ZeroshotCLIP")
    assert zs.seed_free and zs.cells["base"].mean == 70.0 and zs.cells["new"].mean == 60.0
    text = render(build_tables(s), "markdown")
    line = next(x for x in text.splitlines() if "ZeroshotCLIP" in x)
    assert "70.00" in line and "60.00" in line and "1 (seed-free)" in line
    # a zero-shot run on a random backbone is not seed-free: its missing seeds are reported
    write_result(tmp_path, "base2new/test_base/dtd/shots_16/ZeroshotCLIP2/vit_b16/seed1", 50.0,
                 trainer="ZeroshotCLIP2", dataset="DescribableTextures", seed=1, subsample_classes="base",
                 backbone="random:ViT-B-16")
    assert any("ZeroshotCLIP2" in w and "missing seed" in w for w in summarize(tmp_path).warnings)
