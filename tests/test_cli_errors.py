"""Every command line: its own ``--help``; a user mistake is one ``error:`` line on stderr and exit status 2.

Also the two mistakes that used to end in a traceback or a long wait: ``toyclip`` with a 224-pixel config, and a
backbone whose weights are neither cached nor downloadable (no network).
"""
import importlib
import socket
import time

import pytest

import train
from clip import loading
from tests.helpers import TINY_OPTS, make_color_dataset

COMMANDS = ["tools.bench", "tools.corruption", "tools.demo", "tools.feature_shift", "tools.gpu_check",
            "tools.lamm_continual", "tools.nemesis_plots", "tools.plots", "tools.pretrain_toyclip",
            "tools.cache", "datasets.download", "datasets.show", "datasets.toy_world"]

# Mistakes per command; "{tmp}" is a fresh empty folder. Each one fails before any training or download.
MISTAKES = {
    "tools.bench": [[], ["--trainer", "NoSuchTrainer"], ["--trainer", "CoOp", "--steps", "0"],
                    ["--trainer", "CoOp", "--config-file", "{tmp}/missing.yaml"]],
    "tools.corruption": [[], ["--model-dir", "{tmp}/missing"]],
    "tools.demo": [["--jobs", "0"], ["--dataset", "no_such_toy"]],
    "tools.feature_shift": [[], ["--model-dir", "{tmp}/missing", "--out", "{tmp}/out"]],
    "tools.gpu_check": [["--steps", "0"], ["--trainers", "NoSuchTrainer"]],
    "tools.lamm_continual": [[], ["--root", "{tmp}", "--config-file", "{tmp}/missing.yaml", "--output-dir", "{tmp}/o"]],
    "tools.nemesis_plots": [[], ["{tmp}/missing", "--out", "{tmp}/figure.png"]],
    "tools.plots": [[], ["curves", "{tmp}/missing", "--out", "{tmp}/figure.png"]],
    "tools.pretrain_toyclip": [["--steps", "0"], ["--rescore", "--out", "{tmp}/missing.pt"]],
    "datasets.download": [[], ["no_such_dataset", "--root", "{tmp}"]],
    "datasets.show": [[], ["--root", "{tmp}", "--dataset-config-file", "{tmp}/missing.yaml"]],
    "tools.cache": [[], ["--info", "--clear"]],
    "datasets.toy_world": [[], ["--root", "/proc/no_such_folder", "--dataset", "ToyShapes"]],
}
CASES = [(name, argv) for name in COMMANDS for argv in MISTAKES[name]]


def run_main(name, argv):
    """``python -m name argv`` in this process: the exit status (argparse exits through SystemExit)."""
    try:
        return importlib.import_module(name).main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_the_commands_own(name, capsys):
    assert run_main(name, ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {name} ")


def test_bench_help_lists_only_its_flags(capsys):
    run_main("tools.bench", ["--help"])
    out = capsys.readouterr().out
    assert "--steps" in out and "--eval-images" in out and "--trainer" in out
    for flag in ("--eval-only", "--output-dir", "--resume", "--model-dir", "--load-epoch", "--source-domains"):
        assert flag not in out, flag


@pytest.mark.parametrize("name,argv", CASES, ids=[f"{n}:{' '.join(a) or 'no-args'}" for n, a in CASES])
def test_a_mistake_is_one_error_line_and_status_2(name, argv, tmp_path, capsys):
    code = run_main(name, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(error_lines) == 1 and "Traceback" not in err, err


def test_toyclip_with_a_224_pixel_config_is_a_user_error(tmp_path, capsys):
    root = str(tmp_path / "data")
    make_color_dataset(root)
    opts = [o if o != "(32, 32)" else "(224, 224)" for o in TINY_OPTS]
    errors = {}
    for trainer, extra in (("CoOp", []), ("ZeroshotCLIP", ["--eval-only"])):
        code = train.main(["--root", root, "--output-dir", str(tmp_path / trainer), "--trainer", trainer,
                           "--backbone", "toyclip", *extra, "DATASET.NAME", "TestColors", *opts])
        errors[trainer] = err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("error: INPUT.SIZE is (224, 224) but toyclip takes 32x32 images")
        assert 'INPUT.SIZE "(32, 32)"' in err and len(err.splitlines()) == 1
    assert "configs/trainers/CoOp/toy.yaml" in errors["CoOp"]  # the toy config made for toyclip, where one exists


def test_zero_shot_without_eval_only_is_a_user_error(tmp_path, capsys):
    root = str(tmp_path / "data")
    make_color_dataset(root)
    code = train.main(["--root", root, "--output-dir", str(tmp_path / "zs"), "--trainer", "ZeroshotCLIP",
                       "--backbone", "toyclip", "DATASET.NAME", "TestColors", *TINY_OPTS])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: ZeroshotCLIP has nothing to train: run it with --eval-only.\n"


@pytest.mark.parametrize("trainer,opts,says", [
    ("CoOp", ["TRAINER.COOP.PREC", "fp64"], 'TRAINER.COOP.PREC is "fp64"'),
    ("APLe", ["TRAINER.APLE.FILTER", "bandpass"], "FILTER"),
    ("MaPLe", ["TRAINER.MAPLE.PROMPT_DEPTH", "0"], "PROMPT_DEPTH"),
])
def test_a_trainer_setting_it_refuses_is_one_error_line(trainer, opts, says, tmp_path, capsys):
    """``check_cfg`` refusals are the user's settings: one line and status 2, not a traceback."""
    root = str(tmp_path / "data")
    make_color_dataset(root)
    code = train.main(["--root", root, "--output-dir", str(tmp_path / "run"), "--trainer", trainer,
                       "--backbone", "toyclip", "DATASET.NAME", "TestColors", *TINY_OPTS, *opts])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and says in err and len(err.splitlines()) == 1, err


def _no_network(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_missing_backbone_offline_fails_in_seconds_with_where_to_put_it(tmp_path, monkeypatch):
    """No name resolves (as on a machine without network): the message names the file and the folder at once,
    instead of after huggingface_hub's retries (about 23 s per file, two files tried)."""
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    start = time.perf_counter()
    with pytest.raises(loading.WeightsNotFoundError) as e:
        loading.load_model("ViT-B/16", cache_dir=str(tmp_path))
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"{elapsed:.1f} s"
    msg = str(e.value)
    assert f"ViT-B-16.pt at {tmp_path / 'ViT-B-16.pt'}" in msg and "no answer from https://" in msg


def test_offline_mode_only_while_the_hub_does_not_answer(tmp_path, monkeypatch):
    """Online, open_clip downloads as before; offline it reads the cache only; the setting is restored after."""
    from huggingface_hub import constants

    seen = []

    def create_model(*args, **kwargs):
        seen.append(constants.HF_HUB_OFFLINE)
        raise RuntimeError("no weights in this test")

    monkeypatch.setattr(loading.open_clip, "create_model", create_model)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for reachable in (True, False):
        monkeypatch.setattr(loading, "hub_reachable", lambda timeout=0, r=reachable: r)
        with pytest.raises(loading.WeightsNotFoundError):
            loading.load_model("ViT-B/16", cache_dir=str(tmp_path))
    assert seen == [False, True] and constants.HF_HUB_OFFLINE is False


def test_hub_probe_is_one_quick_request(monkeypatch):
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args[0])
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert loading.hub_reachable() is False and len(calls) == 1
