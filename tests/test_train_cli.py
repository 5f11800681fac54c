"""train.py's command line, end to end, and zero-shot CLIP against a direct computation."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import train
from engine import build_trainer
from engine.utils import set_random_seed, setup_logger
from tests.helpers import TINY_OPTS, TINY_VIT, make_color_dataset, tiny_cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _argv(root, out, *extra, trainer="CoOp"):
    return ["--root", root, "--output-dir", out, "--seed", "0", "--trainer", trainer, "--backbone", TINY_VIT,
            *extra, "DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "1", "TRAINER.COOP.N_CTX", "2", *TINY_OPTS]


def test_train_then_eval_only_on_new_classes(tmp_path, capsys):
    root = str(tmp_path / "data")
    make_color_dataset(root)
    base = str(tmp_path / "train_base")
    assert train.main(_argv(root, base, "DATASET.SUBSAMPLE_CLASSES", "base")) == 0
    res = json.load(open(os.path.join(base, "results.json")))
    assert res["seed"] == 0 and res["subsample_classes"] == "base" and res["num_classes"] == 3
    assert os.path.isfile(os.path.join(base, "config.yaml"))

    # A finished run is not retrained.
    mtime = os.path.getmtime(os.path.join(base, "results.json"))
    assert train.main(_argv(root, base, "DATASET.SUBSAMPLE_CLASSES", "base")) == 0
    assert "already holds finished results" in capsys.readouterr().out
    assert os.path.getmtime(os.path.join(base, "results.json")) == mtime

    # A finished run of another config is not taken for this one: refused with the differing keys.
    assert train.main(_argv(root, base, "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MOMENTUM", "0.5")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "holds the finished results of another run" in err
    assert "  OPTIM.MOMENTUM: 0.9 -> 0.5" in err.splitlines()
    assert os.path.getmtime(os.path.join(base, "results.json")) == mtime

    # A results.json cut short is not "finished": it is moved aside (kept) and the run resumes and finishes.
    good = json.load(open(os.path.join(base, "results.json")))
    with open(os.path.join(base, "results.json"), "w") as f:
        f.write('{"schema_version": 1, "metr')
    assert train.main(_argv(root, base, "DATASET.SUBSAMPLE_CLASSES", "base")) == 0
    assert "does not parse" in capsys.readouterr().err
    assert [f for f in os.listdir(base) if f.startswith("results.json.corrupt-")]
    assert json.load(open(os.path.join(base, "results.json")))["metrics"] == good["metrics"]

    new = str(tmp_path / "test_new")
    argv = _argv(root, new, "--eval-only", "--model-dir", base, "--load-epoch", "1",
                 "DATASET.SUBSAMPLE_CLASSES", "new")
    assert train.main(argv) == 0
    res = json.load(open(os.path.join(new, "results.json")))
    assert res["eval_only"] and res["model_dir"] == base and res["subsample_classes"] == "new"
    # an evaluation of another model is another run, although its config is the same
    other = str(tmp_path / "other_model")
    assert train.main(_argv(root, new, "--eval-only", "--model-dir", other, "--load-epoch", "1",
                            "DATASET.SUBSAMPLE_CLASSES", "new")) == 2
    assert f"  --model-dir: {base!r} -> {other!r}" in capsys.readouterr().err.splitlines()


def test_unknown_config_key_exits_with_a_message(tmp_path, capsys):
    code = train.main(_argv(str(tmp_path), str(tmp_path / "o"), "OPTIM.LRR", "0.1"))
    assert code == 2
    assert 'Config key "OPTIM.LRR"' in capsys.readouterr().err


def test_unknown_trainer_is_named(tmp_path, capsys):
    make_color_dataset(str(tmp_path / "data"))
    assert train.main(_argv(str(tmp_path / "data"), str(tmp_path / "o"), trainer="CooP2")) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: Unknown trainer "CooP2"') and "CoOp" in err and "Traceback" not in err
    with pytest.raises(Exception, match='Unknown trainer "CooP2"'):  # --debug: the exception itself
        train.main(["--debug", *_argv(str(tmp_path / "data"), str(tmp_path / "o"), trainer="CooP2")])


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    """Missing data and an unusable output directory: one ``error:`` line, status 2, no traceback."""
    assert train.main(_argv(str(tmp_path / "no_data"), str(tmp_path / "o"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert train.main(_argv(str(tmp_path / "no_data"), str(blocker / "out"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot use --output-dir") and err.count("\n") == 1


def test_zeroshot_clip_accuracy_equals_direct_computation(tmp_path):
    cfg = tiny_cfg(str(tmp_path / "data"), str(tmp_path / "zs"), trainer="ZeroshotCLIP")
    setup_logger(cfg.OUTPUT_DIR)
    set_random_seed(0)
    t = build_trainer(cfg)
    acc = t.test()
    model = t.clip_model.model
    texts = [f"a photo of a {c}." for c in t.classnames]
    with torch.no_grad():
        w = F.normalize(model.encode_text(t.clip_model.tokenize(texts)), dim=-1)
        correct = total = 0
        for batch in t.test_loader:
            f = F.normalize(model.encode_image(batch["img"]), dim=-1)
            pred = (model.logit_scale.exp() * f @ w.t()).argmax(1)
            correct += (pred == batch["label"]).sum().item()
            total += len(pred)
    assert acc == pytest.approx(100.0 * correct / total)
    res = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))
    assert res["metrics"]["accuracy"] == pytest.approx(acc)


def test_train_py_runs_as_a_script(tmp_path):
    """The documented command line, in a fresh process (registration, logging, exit code)."""
    root = str(tmp_path / "data")
    make_color_dataset(root)
    code = ("import sys, tests.helpers, train; sys.exit(train.main(sys.argv[1:]))")
    out = str(tmp_path / "run")
    proc = subprocess.run([sys.executable, "-c", code, *_argv(root, out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "* accuracy:" in open(os.path.join(out, "log.txt")).read()
