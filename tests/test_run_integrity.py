"""Runs are safe to kill: a run stopped at any save boundary and rerun with the same command ends bit-identical
to an uninterrupted one; resumes refuse another config, another trainer's checkpoint, a partial checkpoint and a
second live run; a truncated newest checkpoint falls back to the previous complete epoch."""
import json
import os
import stat
import subprocess
import sys

import pytest
import torch

import train
from tests.crash_harness import Injector, SimulatedKill, differences, final_state
from tests.helpers import TINY_OPTS, TINY_VIT, make_color_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAINER_OPTS = {
    "CoOp": ["TRAINER.COOP.N_CTX", "2"],
    "CoCoOp": ["TRAINER.COCOOP.N_CTX", "2"],
    "APLe": ["TRAINER.APLE.PREC", "fp32", "TRAINER.APLE.PROMPT_DEPTH_TEXT", "2", "TRAINER.APLE.PROMPT_DEPTH_VISION",
             "2"],
    "RESTORE": ["TRAINER.RESTORE.PROMPT_DEPTH", "3", "TRAINER.RESTORE.PREC", "fp32", "TRAINER.RESTORE.CALIB_EPOCH",
                "0"],
    "LAMM": ["TRAINER.LAMM.PREC", "fp32"],
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    make_color_dataset(path)
    return path


def argv(root, out, trainer="CoOp", final="last_step", epochs=2, extra=()):
    """A tiny run: one batch per epoch, LR high enough that validation accuracy changes between epochs."""
    return ["--root", root, "--output-dir", str(out), "--seed", "1", "--trainer", trainer, "--backbone", TINY_VIT,
            *extra, "DATASET.NAME", "TestColors", *TINY_OPTS, "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH",
            str(epochs), "OPTIM.LR", "0.05", "OPTIM.WARMUP_EPOCH", "0", "TEST.FINAL_MODEL", final,
            *TRAINER_OPTS[trainer]]


def run(args, kill_at=None, leave=""):
    """``train.main(args)`` under the injector; returns (exit code or "killed", boundary labels)."""
    out = args[args.index("--output-dir") + 1]
    with Injector(out, kill_at=kill_at, leave=leave) as inj:
        try:
            return train.main(args), inj.labels
        except SimulatedKill:
            return "killed", inj.labels


# One mode per trainer by default (the motivating case, APLe, with best_val); the other five with -m slow.
CHAINS = [("APLe", "best_val"), ("RESTORE", "last_step"), ("CoOp", "last_step"), ("LAMM", "last_step"),
          ("CoCoOp", "best_val")]
CHAINS += [pytest.param(t, f, marks=pytest.mark.slow) for t in ("APLe", "RESTORE", "CoOp", "LAMM", "CoCoOp")
           for f in ("last_step", "best_val") if (t, f) not in CHAINS]


@pytest.mark.parametrize("trainer,final", CHAINS)
def test_killed_at_every_boundary_resumes_bit_identical(root, tmp_path, trainer, final):
    """Chain of kills: run i is killed right after the i-th change to disk of the uninterrupted run (having redone
    what the previous kill lost), sometimes leaving the next write's temporary file or a partial metrics line; the
    run that finally completes must equal the uninterrupted one."""
    code, boundaries = run(argv(root, tmp_path / "full", trainer, final))
    assert code == 0
    reference = final_state(str(tmp_path / "full"))
    assert len(set(boundaries)) == len(boundaries)

    args = argv(root, tmp_path / "killed", trainer, final)
    finished = boundaries.index("final|write|results.json|1")
    for i, label in enumerate(boundaries):
        if "|append|" in label:  # epoch 1's line half-written, epoch 2's complete
            leave = "partial" if label.startswith("epoch1") else ""
        else:  # every other write also leaves the next write's temporary file (none follows results.json)
            leave = "tmp" if i % 2 and i < finished else ""
        code, _ = run(args, kill_at=label, leave=leave)
        if i > finished:  # results.json is written: the rerun reports a finished run
            assert code == 0
            break
        assert code == "killed", f"the rerun never reached boundary {label}"
    assert run(args)[0] == 0
    got = final_state(str(tmp_path / "killed"))
    assert differences(reference, got) == [], f"{trainer} {final}: {len(boundaries)} boundaries"
    assert not [f for f in got["files"] if ".tmp-" in f]
    log = open(tmp_path / "killed" / "log.txt").read()
    assert "Dropped 1 unreadable line" in log and "unfinished temporary file" in log  # both leftovers were met


@pytest.fixture(scope="module")
def coop_reference(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("coop_ref") / "run"
    assert run(argv(root, out))[0] == 0
    return final_state(str(out))


def test_sigkilled_run_resumes_bit_identical_and_takes_over_the_lock(root, tmp_path, coop_reference):
    """A real SIGKILL between the module file and the manifest of epoch 1: no clean-up code runs at all."""
    out = tmp_path / "run"
    args = argv(root, out)
    proc = subprocess.run([sys.executable, "-m", "tests.crash_harness", "epoch1|write|prompt_learner/model.pth.tar-1|1",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert os.path.isfile(out / ".run.lock.json")  # the dead run's note
    assert run(args)[0] == 0
    assert differences(coop_reference, final_state(str(out))) == []
    log = open(out / "log.txt").read()
    assert "Taking over" in log and "Resumed" not in log.split("Taking over")[1]  # epoch 1 was incomplete


def test_resume_with_another_config_is_refused_then_recorded(root, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(argv(root, out), kill_at="epoch1|write|checkpoints.json|1")[0] == "killed"
    capsys.readouterr()
    changed = argv(root, out) + ["OPTIM.LR", "0.5"]  # trailing opts: the later value wins
    assert run(changed)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "OPTIM.LR: 0.05 -> 0.5" in err and "--allow-config-change" in err
    assert "lr: 0.05" in open(out / "config.yaml").read().lower().replace("'", "")  # nothing was overwritten
    assert not os.path.exists(out / "results.json")

    # keys that cannot change a result (workers, print frequency) do not block a resume; the allowed change is
    # recorded where the results are
    assert run(["--allow-config-change", *changed, "TRAIN.PRINT_FREQ", "7"])[0] == 0
    res = json.load(open(out / "results.json"))
    assert res["config"]["OPTIM"]["LR"] == 0.5
    assert res["config_changes"] == [{"resumed_after_epoch": 1, "changes": [["OPTIM.LR", 0.05, 0.5]]}]
    # what ran is the new config: epoch 1 at 0.05 (cosine over 2 epochs, no warm-up), epoch 2 at the NEW schedule,
    # 0.5 * (1 + cos(pi * 1 / 2)) / 2 = 0.25 (the old one would give 0.025)
    lrs = [json.loads(line)["lr"] for line in open(out / "metrics.jsonl")]
    assert lrs == pytest.approx([0.05, 0.25])


def test_allowed_change_of_schedule_runs_the_new_schedule(root, tmp_path):
    """The motivating case: LR 0.05 / 2 epochs, killed after epoch 1, resumed with LR 0.5 and 3 epochs."""
    out = tmp_path / "run"
    assert run(argv(root, out), kill_at="epoch1|write|checkpoints.json|1")[0] == "killed"
    changed = argv(root, out) + ["OPTIM.LR", "0.5", "OPTIM.MAX_EPOCH", "3"]
    assert run(["--allow-config-change", *changed])[0] == 0
    lrs = [json.loads(line)["lr"] for line in open(out / "metrics.jsonl")]
    # cosine over 3 epochs from 0.5: epoch 2 = 0.5 * (1 + cos(pi/3)) / 2 = 0.375, epoch 3 = 0.5 * (1 + cos(2pi/3)) / 2
    assert lrs == pytest.approx([0.05, 0.375, 0.125])
    res = json.load(open(out / "results.json"))
    assert res["epoch"] == 3 and res["config"]["OPTIM"]["MAX_EPOCH"] == 3


def test_checkpoint_of_another_trainer_is_refused(root, tmp_path, capsys):
    coop = tmp_path / "coop"
    assert run(argv(root, coop, epochs=1))[0] == 0
    evaluation = argv(root, tmp_path / "eval", trainer="CoCoOp", extra=["--eval-only", "--model-dir", str(coop)])
    capsys.readouterr()
    assert run(evaluation)[0] == 2
    err = capsys.readouterr().err
    assert "CoOp run" in err and "this run is CoCoOp" in err and "--allow-partial-load" in err
    assert not os.path.exists(tmp_path / "eval" / "results.json")
    # explicitly allowed: the matching keys load (the context), the rest is reported
    assert run(["--allow-partial-load", *evaluation])[0] == 0
    assert "meta_net" in open(tmp_path / "eval" / "log.txt").read()


def test_checkpoints_without_identity_are_mapped_then_checked_exactly(root, tmp_path):
    """Released or older files (no identity): extra class-set buffers are dropped, anything else must match."""
    from engine import build_trainer
    from engine.checkpoint_set import CheckpointMismatchError
    from engine.utils import set_random_seed
    from tests.helpers import tiny_cfg

    cfg = tiny_cfg(root, str(tmp_path / "t"), opts=TRAINER_OPTS["CoOp"])
    set_random_seed(1)
    t = build_trainer(cfg)
    ctx = torch.randn_like(t.prompt_learner.ctx)
    released = tmp_path / "released" / "prompt_learner"
    released.mkdir(parents=True)
    torch.save({"state_dict": {"ctx": ctx, "token_prefix": torch.zeros(3), "token_suffix": torch.zeros(3)},
                "epoch": 50}, released / "model.pth.tar-50")
    t.load_model(str(tmp_path / "released"))
    assert torch.equal(t.prompt_learner.ctx, ctx) and t.loaded_epoch == 50

    torch.save({"state_dict": {"context": ctx}, "epoch": 50}, released / "model.pth.tar-50")
    with pytest.raises(CheckpointMismatchError, match=r"lacks: ctx.*model lacks: context"):
        t.load_model(str(tmp_path / "released"))
    torch.save({"state_dict": {"ctx": torch.zeros(5, ctx.shape[1])}, "epoch": 50}, released / "model.pth.tar-50")
    with pytest.raises(CheckpointMismatchError, match=rf"ctx \[5, {ctx.shape[1]}\] vs \[2, {ctx.shape[1]}\]"):
        t.load_model(str(tmp_path / "released"))


def test_a_second_run_on_the_same_output_dir_is_refused(root, tmp_path, capsys):
    from engine.utils.run_lock import RunLock

    out = tmp_path / "run"
    with RunLock(str(out)):  # a live run (another open file description holds the lock)
        assert run(argv(root, out))[0] == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and "in use by another run" in err
    assert not os.path.exists(out / "metrics.jsonl")


def test_truncated_newest_checkpoint_falls_back_to_the_previous_epoch(root, tmp_path, coop_reference):
    out = tmp_path / "run"
    args = argv(root, out)
    assert run(args, kill_at="epoch2|write|checkpoints.json|1")[0] == "killed"
    newest = out / "prompt_learner" / "model.pth.tar-2"
    newest.write_bytes(newest.read_bytes()[:100])
    assert run(args)[0] == 0
    assert differences(coop_reference, final_state(str(out))) == []
    log = open(out / "log.txt").read()
    assert "model.pth.tar-2 is unreadable" in log and "Falling back" in log and "epoch 1 finished" in log
    assert "weights_only=False" not in log  # unsafe-loading advice is for refused files only


def test_written_files_follow_the_umask(root, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert run(argv(root, out, epochs=1))[0] == 0
    finally:
        os.umask(old)
    for rel in ("results.json", "metrics.jsonl", "checkpoints.json", "config.yaml", "prompt_learner/model.pth.tar-1"):
        assert stat.S_IMODE(os.stat(out / rel).st_mode) == 0o644, rel


def test_clean_up_removes_only_the_writers_temporary_files_in_the_runs_folders(tmp_path):
    """A user's ``.tmp-*`` files, and anything outside the output folder and its module folders, are not ours."""
    from engine.run_files import remove_stale_temp_files

    out = tmp_path / "run"
    (out / "prompt_learner").mkdir(parents=True)
    (out / "prompt_learner" / "model.pth.tar-1").write_bytes(b"checkpoint")
    (out / "notes" / "deeper").mkdir(parents=True)
    ours = [out / ".tmp-results.json.k2x_9a0b.part", out / "prompt_learner" / ".tmp-model.pth.tar-2.abcd1234.part"]
    theirs = [out / ".tmp-chapter3.tex", out / "notes" / ".tmp-chapter3.tex", out / ".tmp-results.json",
              out / ".tmp-results.json.abc.part", out / "notes" / ".tmp-model.pth.tar-2.abcd1234.part",
              out / "notes" / "deeper" / ".tmp-x.abcd1234.part"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    removed = remove_stale_temp_files(str(out))
    assert sorted(removed) == sorted(map(str, ours))
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_atomic_writers_name_their_temporary_files_for_the_clean_up(tmp_path, monkeypatch):
    from engine.utils.checkpoint import atomic_write_text, temp_target

    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text("{}", str(tmp_path / "results.json"))
    assert len(seen) == 1 and temp_target(seen[0]) == "results.json"


def test_atomic_torch_save_check_refuses_before_the_rename(tmp_path):
    """A ``check`` that raises leaves the old file as it was and no temporary file; one that passes sees the new
    content at the temporary path, and the target gets it."""
    from engine.utils.checkpoint import atomic_torch_save

    target = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.zeros(2)}, str(target))
    seen = []

    def refuse(tmp):
        seen.append(torch.load(tmp, weights_only=True)["w"].tolist())
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        atomic_torch_save({"w": torch.ones(2)}, str(target), check=refuse)
    assert seen == [[1.0, 1.0]] and os.listdir(tmp_path) == ["model.pt"]
    assert torch.load(target, weights_only=True)["w"].tolist() == [0.0, 0.0]
    atomic_torch_save({"w": torch.ones(2)}, str(target), check=seen.append)
    assert torch.load(target, weights_only=True)["w"].tolist() == [1.0, 1.0] and len(seen) == 2


def test_atomic_write_text_is_utf8_and_bytes_are_verbatim(tmp_path):
    from engine.utils.checkpoint import atomic_write_bytes, atomic_write_text

    atomic_write_text("café ☕\n", str(tmp_path / "names.txt"))
    assert (tmp_path / "names.txt").read_bytes() == "café ☕\n".encode("utf-8")
    atomic_write_bytes(b"\x89PNG\r\n", str(tmp_path / "sub" / "a.png"))
    assert (tmp_path / "sub" / "a.png").read_bytes() == b"\x89PNG\r\n"


def _failing_save(monkeypatch, epoch, error):
    """torch.save of epoch ``epoch``'s module checkpoint writes a little, then fails as on a full disk."""
    real_save = torch.save

    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and "state_dict" in obj and obj.get("epoch") == epoch:
            f.write(b"PK\x03\x04 partial")
            raise error
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs "
                                                "598")], ids=["ENOSPC", "RuntimeError"])
def test_a_full_disk_while_saving_is_one_error_line_and_the_last_epoch_resumes(root, tmp_path, capsys, monkeypatch,
                                                                                coop_reference, error):
    out = tmp_path / "run"
    args = argv(root, out)
    with monkeypatch.context() as m:
        _failing_save(m, 2, error)
        capsys.readouterr()
        assert run(args)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot write ") and err.count("\n") == 1, err
    assert "model.pth.tar-2" in err and "last complete epoch" in err
    assert json.load(open(out / "checkpoints.json"))["epochs"] == [1]
    assert torch.load(out / "prompt_learner" / "model.pth.tar-1", weights_only=True)["epoch"] == 1
    assert not os.path.exists(out / "prompt_learner" / "model.pth.tar-2")
    assert not [f for _, _, files in os.walk(out) for f in files if f.startswith(".tmp-")]
    assert run(args)[0] == 0  # space freed: the same command resumes from epoch 1
    assert differences(coop_reference, final_state(str(out))) == []
    assert "Resumed" in open(out / "log.txt").read()
