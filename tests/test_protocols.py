"""experiments.protocols: command lines, output layout, config choice and dependencies of every protocol; the scripts."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from experiments import protocols
from experiments.protocols import ProtocolError, Run, Settings, build_runs, expand, max_epoch

REPO = Path(__file__).resolve().parent.parent

TRAINER_CONFIGS = {  # folder/name -> OPTIM.MAX_EPOCH written into the YAML (None: key absent)
    "CoOp/vit_b16": 200, "CoOp/vit_b16_ep50": 50, "CoOp/vit_b16_ep100": 100,
    "CoOp/vit_b16_ctxv1": 200, "CoOp/vit_b16_ep50_ctxv1": 50,
    "MaPLe/vit_b16_c2_ep5_batch4_2ctx": 5, "MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets": 2,
    "Custom/my_cfg": None,
}
DATASETS = {"imagenet": "ImageNet", "oxford_pets": "OxfordPets", "caltech101": "Caltech101",
            "dtd": "DescribableTextures", "imagenetv2": "ImageNetV2", "imagenet_a": "ImageNetA"}


def write_configs(root: Path) -> Path:
    for stem, name in DATASETS.items():
        (root / "datasets").mkdir(parents=True, exist_ok=True)
        (root / "datasets" / f"{stem}.yaml").write_text(f'DATASET:\n  NAME: "{name}"\n')
    for rel, epochs in TRAINER_CONFIGS.items():
        path = root / "trainers" / f"{rel}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("OPTIM:\n  NAME: sgd\n" + (f"  MAX_EPOCH: {epochs}\n" if epochs is not None else ""))
    return root


@pytest.fixture
def settings(tmp_path):
    return Settings(data_root=tmp_path / "data", output_root=tmp_path / "out", python="python",
                    configs_dir=write_configs(tmp_path / "configs"))


def opt_pairs(argv):
    """The trailing KEY VALUE pairs of an argv (after the last --flag and its value)."""
    keys = [i for i, a in enumerate(argv) if re.fullmatch(r"[A-Z_]+(\.[A-Z0-9_]+)+", a)]
    return {argv[i]: argv[i + 1] for i in keys}


def flag(argv, name):
    return argv[argv.index(name) + 1]


def test_base2new_train_and_test_new_commands(settings, tmp_path):
    train, test = build_runs("base2new", "CoOp", "oxford_pets", 1, settings)
    cfgs = settings.configs_dir
    assert train.run_id == "base2new/train_base/oxford_pets/shots_16/CoOp/vit_b16_ctxv1/seed1"
    assert train.output_dir == tmp_path / "out" / train.run_id
    assert list(train.argv) == [
        "python", "train.py", "--root", str(tmp_path / "data"), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(cfgs / "datasets/oxford_pets.yaml"),
        "--config-file", str(cfgs / "trainers/CoOp/vit_b16_ctxv1.yaml"),
        "--output-dir", str(train.output_dir), "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"]
    assert train.depends_on == ()
    assert test.run_id == "base2new/test_new/oxford_pets/shots_16/CoOp/vit_b16_ctxv1/seed1"
    assert test.depends_on == (train.run_id,)
    assert "--eval-only" in test.argv
    assert flag(test.argv, "--model-dir") == str(train.output_dir)
    assert flag(test.argv, "--load-epoch") == "200"  # read from the YAML
    assert opt_pairs(test.argv) == {"DATASET.NUM_SHOTS": "16", "DATASET.SUBSAMPLE_CLASSES": "new"}


def test_imagenet_uses_its_own_base2new_config_and_epoch(settings):
    train, test = build_runs("base2new", "CoOp", "imagenet", 2, settings)
    assert train.config == "vit_b16_ep50_ctxv1" and train.run_id.endswith("CoOp/vit_b16_ep50_ctxv1/seed2")
    assert flag(test.argv, "--load-epoch") == "50"


def test_load_epoch_follows_opts_then_yaml_then_default(settings, tmp_path):
    s = Settings(**{**settings.__dict__, "opts": ("OPTIM.MAX_EPOCH", "3", "OPTIM.LR", "0.1")})
    _, test = build_runs("base2new", "MaPLe", "dtd", 1, s)
    assert flag(test.argv, "--load-epoch") == "3"
    assert test.argv[-4:] == ("OPTIM.MAX_EPOCH", "3", "OPTIM.LR", "0.1")
    _, test = build_runs("base2new", "MaPLe", "dtd", 1, settings)
    assert flag(test.argv, "--load-epoch") == "5"
    from engine.config.defaults import get_cfg_default

    assert max_epoch(settings.configs_dir / "trainers/Custom/my_cfg.yaml") == get_cfg_default().OPTIM.MAX_EPOCH


def test_seed_zero_is_a_seed(settings):
    (run,) = build_runs("fewshot", "CoOp", "oxford_pets", 0, settings, shots=16)
    assert flag(run.argv, "--seed") == "0" and run.run_id.endswith("/seed0")
    assert protocols.parse_seeds(["0", "2"]) == [0, 2]
    assert protocols.parse_seeds(["all"]) == [1, 2, 3]


@pytest.mark.parametrize("shots, dataset, config", [
    (1, "oxford_pets", "vit_b16_ep50"), (2, "oxford_pets", "vit_b16_ep100"), (4, "oxford_pets", "vit_b16_ep100"),
    (8, "oxford_pets", "vit_b16"), (16, "oxford_pets", "vit_b16"), (16, "imagenet", "vit_b16_ep50"),
    (2, "imagenet", "vit_b16_ep50")])
def test_coop_fewshot_epoch_rule(settings, shots, dataset, config):
    (run,) = build_runs("fewshot", "CoOp", dataset, 3, settings, shots=shots)
    assert run.run_id == f"fewshot/{dataset}/CoOp/{config}_{shots}shots/seed3"
    assert opt_pairs(run.argv) == {"DATASET.NUM_SHOTS": str(shots)}
    assert "--eval-only" not in run.argv


def test_fewshot_grid_defaults_to_five_shot_counts(settings):
    runs = expand("fewshot", ["MaPLe"], ["dtd"], [1], settings)
    assert [r.shots for r in runs] == [1, 2, 4, 8, 16]
    assert {r.config for r in runs} == {"vit_b16_c2_ep5_batch4_2ctx"}  # one config at every shot count


def test_xd_and_dg_share_one_imagenet_source_run(settings):
    xd = expand("xd", ["MaPLe"], ["caltech101", "dtd"], [1, 2], settings)
    dg = expand("dg", ["MaPLe"], ["imagenetv2", "imagenet_a"], [1, 2], settings)
    sources = [r for r in xd if r.role == "train"]
    assert [r.run_id for r in sources] == [
        f"xd/train/imagenet/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets/seed{s}" for s in (1, 2)]
    assert len(xd) == 2 + 4 and len(dg) == 2 + 4
    assert {r.run_id for r in dg if r.role == "train"} == {r.run_id for r in sources}
    test = next(r for r in dg if r.dataset == "imagenet_a" and r.seed == 2)
    assert test.run_id == "dg/test/imagenet_a/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets/seed2"
    assert test.depends_on == (sources[1].run_id,)
    assert flag(test.argv, "--load-epoch") == "2" and "DATASET.NUM_SHOTS" not in test.argv
    assert opt_pairs(sources[0].argv) == {"DATASET.NUM_SHOTS": "16"}
    order = [r.run_id for r in xd]
    assert all(order.index(r.depends_on[0]) < order.index(r.run_id) for r in xd if r.depends_on)


def test_xd_rejects_imagenet_as_target(settings):
    with pytest.raises(ProtocolError, match="source"):
        build_runs("xd", "MaPLe", "imagenet", 1, settings)


def test_zero_shot_runs_are_eval_only_without_dependencies(settings):
    base, new = build_runs("base2new", "ZeroshotCLIP", "dtd", 1, settings)
    assert base.run_id == "base2new/test_base/dtd/shots_16/ZeroshotCLIP/vit_b16/seed1"
    assert new.run_id == "base2new/test_new/dtd/shots_16/ZeroshotCLIP/vit_b16/seed1"
    for run in (base, new):
        assert "--eval-only" in run.argv and "--model-dir" not in run.argv and run.depends_on == ()
        assert flag(run.argv, "--config-file").endswith("trainers/CoOp/vit_b16.yaml")
    (zs,) = build_runs("zeroshot", "ZeroshotCLIP", "imagenetv2", 1, settings)
    assert zs.run_id == "zeroshot/imagenetv2/ZeroshotCLIP/vit_b16/seed1" and "--eval-only" in zs.argv
    assert "DATASET.NUM_SHOTS" not in zs.argv


def test_zero_shot_transfer_evaluates_the_source_as_well(settings):
    runs = expand("dg", ["ZeroshotCLIP"], ["imagenetv2"], [1], settings)
    assert [r.run_id for r in runs] == ["xd/test/imagenet/shots_16/ZeroshotCLIP/vit_b16/seed1",
                                        "dg/test/imagenetv2/shots_16/ZeroshotCLIP/vit_b16/seed1"]
    assert all("--eval-only" in r.argv and not r.depends_on for r in runs)


def test_per_dataset_values_are_added_to_training_runs_only(settings):
    folder = settings.configs_dir / "trainers" / "RESTORE"
    (folder / "datasets").mkdir(parents=True)
    for name in ("vit_b16_c2_ep10_batch4_2ctx", "vit_b16_c2_ep10_batch4_2ctx_ivlp_fsc"):
        (folder / f"{name}.yaml").write_text("OPTIM:\n  MAX_EPOCH: 10\n")
    (folder / "datasets" / "dtd.yaml").write_text("TRAINER:\n  RESTORE:\n    VIS_CALIB_R: 0.15\n    SHIFT: gram\n")
    train, test = build_runs("base2new", "RESTORE", "dtd", 1, settings)
    assert opt_pairs(train.argv) == {"DATASET.NUM_SHOTS": "16", "DATASET.SUBSAMPLE_CLASSES": "base",
                                     "TRAINER.RESTORE.VIS_CALIB_R": "0.15", "TRAINER.RESTORE.SHIFT": "gram"}
    assert "TRAINER.RESTORE.VIS_CALIB_R" not in test.argv  # the evaluation loads the trained ratios
    train, _ = build_runs("base2new", "RESTORE", "dtd", 1, settings, config="vit_b16_c2_ep10_batch4_2ctx_ivlp_fsc")
    assert "TRAINER.RESTORE.VIS_CALIB_R" not in train.argv  # an ablation without per-dataset values
    train, _ = build_runs("base2new", "RESTORE", "oxford_pets", 1, settings)
    assert "TRAINER.RESTORE.VIS_CALIB_R" not in train.argv  # no file for this dataset


def test_nemesis_fewshot_sends_food101_and_pets_to_the_fixed_omega_configs(settings):
    folder = settings.configs_dir / "trainers" / "Nemesis"
    folder.mkdir(parents=True)
    for stem in ("rn50_pun", "rn50_pun_fp"):
        for suffix, epochs in (("_ep50", 50), ("_ep100", 100), ("", 200)):
            (folder / f"{stem}{suffix}.yaml").write_text(f"OPTIM:\n  MAX_EPOCH: {epochs}\n")
    for stem in ("food101", "oxford_pets"):
        (settings.configs_dir / "datasets" / f"{stem}.yaml").write_text("DATASET:\n  NAME: X\n")
    expected = {("oxford_pets", 1): "rn50_pun_fp_ep50", ("oxford_pets", 4): "rn50_pun_fp_ep100",
                ("food101", 16): "rn50_pun_fp", ("dtd", 16): "rn50_pun", ("dtd", 2): "rn50_pun_ep100",
                ("imagenet", 16): "rn50_pun_ep50"}
    for (dataset, shots), config in expected.items():
        (run,) = build_runs("fewshot", "Nemesis", dataset, 1, settings, shots=shots)
        assert flag(run.argv, "--config-file").endswith(f"trainers/Nemesis/{config}.yaml"), (dataset, shots)
    assert protocols.METHODS["Nemesis"].reported_names(["rn50_pun_fp"]) == ("CoOp+Nemesis-PUN",
                                                                            "CoOp+Nemesis-PUN (ω=1)")


def test_restore_fewshot_runs_without_the_per_dataset_ratios(settings):
    folder = settings.configs_dir / "trainers" / "RESTORE"
    (folder / "datasets").mkdir(parents=True)
    (folder / "vit_b16_c2_ep10_batch4_2ctx.yaml").write_text("OPTIM:\n  MAX_EPOCH: 10\n")
    (folder / "datasets" / "dtd.yaml").write_text("TRAINER:\n  RESTORE:\n    VIS_CALIB_R: 0.15\n")
    (run,) = build_runs("fewshot", "RESTORE", "dtd", 1, settings, shots=1)
    assert flag(run.argv, "--config-file").endswith("trainers/RESTORE/vit_b16_c2_ep10_batch4_2ctx.yaml")
    assert opt_pairs(run.argv) == {"DATASET.NUM_SHOTS": "1"}  # the released script: defaults 0.1 / 0.1, lambda 1
    train, _ = build_runs("base2new", "RESTORE", "dtd", 1, settings)
    assert opt_pairs(train.argv)["TRAINER.RESTORE.VIS_CALIB_R"] == "0.15"  # base-to-new keeps them


def test_reported_names_follow_the_config():
    lamm, nemesis = protocols.METHODS["LAMM"], protocols.METHODS["Nemesis"]
    assert lamm.reported_names(["vit_b16_ep50_ctxv1"]) == ("LAMM",)
    assert lamm.reported_names(["coop_vit_b16_ep50_ctxv1"]) == ("CoOp+LAMM",)
    assert nemesis.reported_names(["rn50_pun_ep50", "rn50_pun"]) == ("CoOp+Nemesis-PUN", "CoOp+Nemesis-PUN (ω=1)")
    assert nemesis.reported_names(["vit_b16_c4_ep10_batch1_ctxv1_pan_a20"]) == ("CoCoOp+Nemesis-PAN (ω=20)",)
    assert protocols.METHODS["VPT"].reported_names() == ("VPT-deep",)
    assert protocols.config_family("vit_b16_ep50_ctxv1") == "vit_b16_ctxv1"


def test_protocol_misuse_gives_one_clear_error(settings):
    with pytest.raises(ProtocolError, match="zeroshot protocol"):
        build_runs("zeroshot", "CoOp", "dtd", 1, settings)
    with pytest.raises(ProtocolError, match="does not train"):
        build_runs("fewshot", "ZeroshotCLIP", "dtd", 1, settings)
    with pytest.raises(ProtocolError, match="Unknown protocol"):
        build_runs("b2n", "CoOp", "dtd", 1, settings)


def test_unknown_trainer_needs_an_explicit_config(settings):
    with pytest.raises(ProtocolError, match=r"FACTS.protocol on its trainer class"):
        build_runs("base2new", "Custom", "dtd", 1, settings)
    train, test = build_runs("base2new", "Custom", "dtd", 1, settings, config="my_cfg")
    assert train.run_id == "base2new/train_base/dtd/shots_16/Custom/my_cfg/seed1"


def test_missing_files_name_the_expected_path(settings):
    with pytest.raises(ProtocolError, match=r"expected .*trainers/CoOp/nope\.yaml.*Available: vit_b16"):
        build_runs("base2new", "CoOp", "dtd", 1, settings, config="nope")
    with pytest.raises(ProtocolError, match=r"expected .*datasets/mnist\.yaml"):
        build_runs("base2new", "CoOp", "mnist", 1, settings)


def test_settings_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA", raising=False)
    monkeypatch.delenv("OUTPUT", raising=False)
    with pytest.raises(ProtocolError, match="set DATA="):
        protocols.settings_from_env()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA", "rel/data")
    s = protocols.settings_from_env()
    assert s.data_root == tmp_path / "rel/data" and s.output_root == REPO / "output"
    monkeypatch.setenv("OUTPUT", "outs")
    assert protocols.settings_from_env(output=None).output_root == tmp_path / "outs"
    assert protocols.settings_from_env(output="x").output_root == tmp_path / "x"


def test_run_round_trip_and_finished(settings):
    train, _ = build_runs("base2new", "CoOp", "dtd", 1, settings)
    assert Run.from_dict(train.to_dict()) == train
    assert not train.finished and train.output_root == settings.output_root
    train.output_dir.mkdir(parents=True)
    (train.output_dir / "results.json").write_text("{}")
    assert train.finished


def test_grid_expansion_counts_and_all(settings):
    runs = expand("base2new", ["CoOp", "MaPLe"], ["dtd", "oxford_pets"], [1, 2, 3], settings)
    assert len(runs) == 2 * 2 * 3 * 2 and len({r.run_id for r in runs}) == len(runs)
    assert protocols.default_datasets("base2new") == protocols.BASE2NEW_DATASETS
    assert len(protocols.BASE2NEW_DATASETS) == 11
    assert protocols.default_datasets("xd") == protocols.BASE2NEW_DATASETS[1:]
    assert protocols.default_datasets("dg") == ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")


# ---- the shell scripts (dry run against the repository's own configs) ----

def script(name, *args, env=None, cwd=REPO):
    full_env = {**os.environ, "PYTHON": os.sys.executable, **(env or {})}
    return subprocess.run(["bash", str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=60)


def test_scripts_print_usage_without_arguments():
    for name in ("base2new.sh", "fewshot.sh", "xd.sh", "dg.sh", "zeroshot.sh"):
        res = script(name)
        assert res.returncode == 2 and res.stderr.startswith(f"usage: scripts/{name}"), (name, res.stderr)


def test_scripts_need_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATA"}
    res = subprocess.run(["bash", str(REPO / "scripts/base2new.sh"), "CoOp", "dtd"], capture_output=True, text=True,
                         env={**env, "PYTHON": os.sys.executable}, cwd=tmp_path, timeout=60)
    assert res.returncode == 2 and "set DATA=" in res.stderr


def _need(*rels):
    missing = [r for r in rels if not (REPO / r).is_file()]
    if missing:
        pytest.skip(f"repository configs not present yet: {', '.join(missing)}")


def test_base2new_script_dry_run_prints_the_commands(tmp_path):
    _need("configs/trainers/CoOp/vit_b16_ctxv1.yaml")
    res = script("base2new.sh", "CoOp", "oxford_pets", "1", env={"DATA": str(tmp_path / "d"), "DRY_RUN": "1",
                                                                  "OUTPUT": str(tmp_path / "o")}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2
    assert f"--output-dir {tmp_path}/o/base2new/train_base/oxford_pets/shots_16/CoOp/vit_b16_ctxv1/seed1" in lines[0]
    assert "DATASET.SUBSAMPLE_CLASSES base" in lines[0] and f"--root {tmp_path}/d" in lines[0]
    assert "--eval-only" in lines[1] and "DATASET.SUBSAMPLE_CLASSES new" in lines[1]
    assert not (tmp_path / "o").exists()  # a dry run creates nothing


def test_script_skips_finished_runs_and_passes_opts(tmp_path):
    _need("configs/trainers/CoOp/vit_b16_ctxv1.yaml")
    import json

    from experiments.sweep import expected_config

    env = {"DATA": str(tmp_path / "d"), "DRY_RUN": "1", "OUTPUT": str(tmp_path / "o")}
    opts = ("OPTIM.MAX_EPOCH", "7")  # trailing opts put the runs in their own folder (experiments.protocols.variant_folder)
    settings = Settings(tmp_path / "d", tmp_path / "o", opts=opts, variant=protocols.variant_folder(None, opts))
    done = expand("base2new", ["CoOp"], ["dtd"], [2], settings, config="vit_b16_ctxv1")[0]
    done.output_dir.mkdir(parents=True)
    (done.output_dir / "results.json").write_text(json.dumps({"config": expected_config(done)}))
    res = script("base2new.sh", "CoOp", "dtd", "2", "vit_b16_ctxv1", *opts, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"skip (finished): {done.run_id}" in res.stdout
    assert done.run_id == f"{settings.variant}/base2new/train_base/dtd/shots_16/CoOp/vit_b16_ctxv1/seed2"
    commands = [line for line in res.stdout.splitlines() if "train.py" in line]
    assert len(commands) == 1 and "--load-epoch 7" in commands[0] and commands[0].endswith("OPTIM.MAX_EPOCH 7")


def test_all_datasets_and_seeds_from_the_scripts(tmp_path):
    _need("configs/trainers/CoOp/vit_b16_ctxv1.yaml", "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml",
          "configs/trainers/CoOp/vit_b16.yaml", "configs/trainers/CoOp/vit_b16_ep50.yaml",
          "configs/trainers/CoOp/vit_b16_ep100.yaml")
    env = {"DATA": str(tmp_path / "d"), "DRY_RUN": "1", "OUTPUT": str(tmp_path / "o")}
    res = script("base2new.sh", "CoOp", "all", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 11 * 3 * 2
    res = script("fewshot.sh", "CoOp", "oxford_pets", "all", "1", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [line.split("--config-file ")[1].split()[0] for line in res.stdout.strip().splitlines()] == [
        "configs/trainers/CoOp/vit_b16_ep50.yaml", "configs/trainers/CoOp/vit_b16_ep100.yaml",
        "configs/trainers/CoOp/vit_b16_ep100.yaml", "configs/trainers/CoOp/vit_b16.yaml",
        "configs/trainers/CoOp/vit_b16.yaml"]
    res = script("zeroshot.sh", "all", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 15


def test_every_default_config_exists_in_the_repository():
    missing = []
    for m in protocols.METHODS.values():
        names = {m.base2new, m.base2new_imagenet, m.transfer, *m.dataset_configs,
                 *(m.config_for("fewshot", d, k) for d in ("imagenet", "dtd") for k in protocols.FEWSHOT_SHOTS)}
        missing += [f"{m.folder}/{c}.yaml" for c in names - {None}
                    if not (protocols.CONFIGS_DIR / "trainers" / m.folder / f"{c}.yaml").is_file()]
    assert missing == []
