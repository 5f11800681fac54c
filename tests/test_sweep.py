"""tools.sweep: grids, skipping and resuming, the local queue, failure records, the submitit path, real runs."""
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from experiments import sweep
from experiments.protocols import REPO_ROOT, Run, Settings, settings_from_env, variant_folder
from experiments.sweep import Grid, Outcome, SlurmOptions, SweepError

# A stand-in for train.py: writes results.json (accuracy = argv[2]) unless the file named by argv[3] exists; with a
# 4th argument it first checks that this dependency's results.json exists (the queue must have waited for it).
FAKE_TRAIN = """
import json, os, sys, time
out, acc, fail_flag = sys.argv[1], float(sys.argv[2]), sys.argv[3]
print("fake train", out)
if len(sys.argv) > 4 and not os.path.isfile(os.path.join(sys.argv[4], "results.json")):
    sys.exit("dependency not finished")
if os.path.exists(fail_flag):
    sys.exit("asked to fail")
time.sleep(0.2)
os.makedirs(out, exist_ok=True)
json.dump({"metrics": {"accuracy": acc}}, open(os.path.join(out, "results.json"), "w"))
"""


def fake_run(root: Path, run_id: str, acc: float = 50.0, depends_on: Run = None) -> Run:
    out = root / run_id
    argv = [sys.executable, "-c", FAKE_TRAIN, str(out), str(acc), str(root / f"FAIL_{run_id.replace('/', '_')}")]
    if depends_on is not None:
        argv.append(str(depends_on.output_dir))
    return Run(run_id=run_id, argv=tuple(argv), output_dir=out, protocol="base2new", trainer="Fake", dataset="d",
               seed=1, shots=16, config="c", role="train_base" if depends_on is None else "test_new",
               depends_on=(depends_on.run_id,) if depends_on is not None else ())


def pair(root: Path, name: str):
    train = fake_run(root, f"base2new/train_base/{name}/seed1", 80.0)
    return train, fake_run(root, f"base2new/test_new/{name}/seed1", 60.0, depends_on=train)


def write_configs(root: Path) -> Path:
    (root / "datasets").mkdir(parents=True)
    (root / "trainers/CoOp").mkdir(parents=True)
    for stem in ("dtd", "eurosat"):
        (root / "datasets" / f"{stem}.yaml").write_text("DATASET:\n  NAME: X\n")
    for name, ep in (("vit_b16_ctxv1", 200), ("vit_b16", 200), ("vit_b16_ep50", 50), ("vit_b16_ep100", 100)):
        (root / "trainers/CoOp" / f"{name}.yaml").write_text(f"OPTIM:\n  MAX_EPOCH: {ep}\n")
    return root


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Runs ``python -m tools.sweep`` in-process with DATA/OUTPUT and a private configs dir."""
    configs = write_configs(tmp_path / "configs")
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OUTPUT", str(tmp_path / "out"))

    def run(*args):
        return sweep.main(["--configs-dir", str(configs), *args])

    return run


# ---- grids ----

def test_cli_grid_expansion_dry_run(cli, tmp_path, capsys):
    assert cli("--protocol", "fewshot", "--trainers", "CoOp", "--datasets", "dtd", "eurosat", "--seeds", "1", "2",
               "--shots", "1", "16", "--dry-run") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 * 2 * 2
    assert all("train.py" in line for line in lines)
    assert any(f"--output-dir {tmp_path}/out/fewshot/eurosat/CoOp/vit_b16_ep50_1shots/seed2" in line for line in lines)
    assert not (tmp_path / "out").exists()


def test_yaml_grid_with_several_blocks(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(
        "sweeps:\n"
        "  - {protocol: base2new, trainers: [CoOp], datasets: [dtd], seeds: [1, 2]}\n"
        "  - {protocol: fewshot, trainers: CoOp, datasets: [dtd], shots: [4], seeds: 0,\n"
        "     config: {CoOp: vit_b16}, opts: [OPTIM.MAX_EPOCH, 3]}\n")
    grids = sweep.grids_from_yaml(grid_file)
    assert grids[1] == Grid("fewshot", ["CoOp"], ["dtd"], ["0"], ["4"], {"CoOp": "vit_b16"}, ["OPTIM.MAX_EPOCH", "3"])
    settings = Settings(tmp_path / "d", tmp_path / "o", python="python", configs_dir=write_configs(tmp_path / "c"))
    runs = [r for g in grids for r in g.runs(settings)]
    phases = ("train_base", "test_new")
    assert [r.run_id for r in runs] == [
        f"base2new/{phase}/dtd/shots_16/CoOp/vit_b16_ctxv1/seed{s}" for s in (1, 2) for phase in phases
    ] + [f"{variant_folder(None, ('OPTIM.MAX_EPOCH', '3'))}/fewshot/dtd/CoOp/vit_b16_4shots/seed0"]
    assert runs[-1].argv[-2:] == ("OPTIM.MAX_EPOCH", "3") and "OPTIM.MAX_EPOCH" not in runs[0].argv


def test_yaml_grid_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: base2new\ntrainers: [CoOp]\nepochs: 3\n")
    with pytest.raises(SweepError, match="unknown keys epochs"):
        sweep.grids_from_yaml(bad)
    with pytest.raises(SweepError, match="not found"):
        sweep.grids_from_yaml(tmp_path / "missing.yaml")


def test_cli_errors_are_one_line(cli, capsys, monkeypatch):
    assert cli("--dry-run") == 2
    assert "give --protocol and --trainers" in capsys.readouterr().err
    assert cli("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "mnist", "--dry-run") == 2
    assert "datasets/mnist.yaml" in capsys.readouterr().err
    assert cli("--retry-failed") == 2
    assert "No failed runs are recorded" in capsys.readouterr().err


# ---- skip and resume ----

def finish_as_train_would(run: Run, config: dict = None) -> None:
    """A results.json recording the run's resolved config, as train.py writes it (``config`` replaces it)."""
    run.output_dir.mkdir(parents=True, exist_ok=True)
    record = {"metrics": {"accuracy": 50.0}, "config": config or sweep.expected_config(run)}
    (run.output_dir / "results.json").write_text(json.dumps(record))


def grid_runs(tmp_path, *, backbone=None, opts=(), seeds=("1",)):
    """The runs the ``cli`` fixture's sweep of CoOp base2new on dtd builds."""
    settings = settings_from_env(configs_dir=str(tmp_path / "configs"), backbone=backbone, opts=tuple(opts))
    return Grid("base2new", ["CoOp"], ["dtd"], seeds).runs(settings)


def test_finished_runs_are_skipped_and_said_so(cli, tmp_path, capsys):
    done = tmp_path / "out/base2new/train_base/dtd/shots_16/CoOp/vit_b16_ctxv1/seed1"
    finish_as_train_would(next(r for r in grid_runs(tmp_path) if r.output_dir == done))
    partial = tmp_path / "out/base2new/train_base/dtd/shots_16/CoOp/vit_b16_ctxv1/seed2"
    partial.mkdir(parents=True)  # started but unfinished: run again (train.py resumes it)
    assert cli("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "dtd", "--seeds", "1", "2",
               "--dry-run") == 0
    out = capsys.readouterr().out
    assert "skip (finished): base2new/train_base/dtd/shots_16/CoOp/vit_b16_ctxv1/seed1" in out
    commands = [line for line in out.splitlines() if "train.py" in line]
    assert len(commands) == 3
    assert any(str(partial) in c for c in commands)


def test_backbone_and_opts_runs_never_reuse_the_default_runs(cli, tmp_path, capsys):
    for run in grid_runs(tmp_path):
        finish_as_train_would(run)
    args = ("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "dtd", "--seeds", "1")
    assert cli(*args, "--dry-run") == 0
    assert capsys.readouterr().out.count("# skip (finished)") == 2  # the default runs are reused as they are
    for extra in (("--backbone", "random:ViT-S-32"), ("--opts", "OPTIM.MAX_EPOCH", "3")):
        assert cli(*args, "--dry-run", *extra) == 0
        out = capsys.readouterr().out
        commands = [line for line in out.splitlines() if "train.py" in line]
        assert len(commands) == 2 and "skip (finished)" not in out
        assert all(f"{tmp_path}/out/variants/" in c and " ".join(extra[1:]) in c for c in commands)


def test_a_finished_run_of_another_config_refuses_the_sweep_with_the_diff(cli, tmp_path, capsys):
    train_run, test_run = grid_runs(tmp_path)
    finish_as_train_would(test_run)
    other = sweep.expected_config(train_run)
    other["OPTIM"]["MAX_EPOCH"] = 7  # e.g. the YAML was edited after this run finished
    finish_as_train_would(train_run, other)
    assert cli("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "dtd", "--seeds", "1") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: 1 finished run(s) under ") and "are not the runs this sweep asks for" in err[0]
    assert err[1:] == [f"{train_run.run_id}:", "  OPTIM.MAX_EPOCH: 7 -> 200"]
    assert json.loads((train_run.output_dir / "results.json").read_text())["config"] == other  # nothing touched
    (train_run.output_dir / "results.json").write_text('{"metrics": {"accuracy": 1.0}}')  # no config to check
    assert cli("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "dtd", "--seeds", "1") == 2
    assert "results.json records no config" in capsys.readouterr().err


def test_only_selects_a_run(cli, capsys):
    rid = "base2new/test_new/dtd/shots_16/CoOp/vit_b16_ctxv1/seed1"
    assert cli("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "dtd", "--seeds", "1", "--only", rid,
               "--dry-run") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "--eval-only" in out[0]
    assert cli("--protocol", "base2new", "--trainers", "CoOp", "--datasets", "dtd", "--only", "nope", "--dry-run") == 2


def test_runs_are_ordered_after_their_dependencies(tmp_path):
    (a1, a2), (b1, b2) = pair(tmp_path, "a"), pair(tmp_path, "b")
    assert sweep.ordered([b2, a2, a1, b1, a2]) == [b1, b2, a1, a2]


def test_dependency_outside_the_sweep_blocks(tmp_path):
    train, test = pair(tmp_path, "a")
    assert sweep.unrunnable([test])[test.run_id].status == "blocked"
    assert sweep.unrunnable([train, test]) == {}
    train.output_dir.mkdir(parents=True)
    (train.output_dir / "results.json").write_text("{}")
    assert sweep.unrunnable([test]) == {}


# ---- the local queue ----

def test_local_queue_respects_dependencies_and_logs(tmp_path):
    runs = [*pair(tmp_path, "a"), *pair(tmp_path, "b")]
    messages = []
    outcomes = sweep.run_local(runs, [{"CUDA_VISIBLE_DEVICES": ""}] * 2, say=messages.append, poll_s=0.05)
    assert {o.status for o in outcomes.values()} == {"done"}, messages
    for run in runs:
        assert json.loads((run.output_dir / "results.json").read_text())["metrics"]["accuracy"] in (80.0, 60.0)
        log = run.log_path.read_text()
        assert log.startswith("# ") and "tools.sweep:" in log and f"fake train {run.output_dir}" in log
    assert any("done" in m and "accuracy 60.00%" in m for m in messages)


def test_failure_blocks_dependents_is_recorded_and_retried(tmp_path, capsys):
    root = tmp_path / "out"
    (a_train, a_test), (b_train, b_test) = pair(root, "a"), pair(root, "b")
    flag = root / f"FAIL_{a_train.run_id.replace('/', '_')}"
    root.mkdir()
    flag.write_text("")
    status = sweep.execute([a_train, a_test, b_train, b_test], root, jobs=2, say=lambda m: None)
    assert status == 1
    report = capsys.readouterr().out
    assert f"FAILED: {a_train.run_id}" in report and f"BLOCKED: {a_test.run_id}" in report
    assert f"log:     {a_train.log_path}" in report and f"command: {a_train.command}" in report
    assert "asked to fail" in a_train.log_path.read_text()
    assert b_test.finished and not a_test.finished
    recorded = json.loads((root / sweep.FAILURES_FILE).read_text())["runs"]
    assert set(recorded) == {a_train.run_id, a_test.run_id}
    assert recorded[a_test.run_id]["status"] == "blocked"

    flag.unlink()
    assert sweep.main(["--retry-failed", "--output", str(root), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s) to execute" in out and a_test.finished
    assert not (root / sweep.FAILURES_FILE).exists()


def test_local_slots_cpu_and_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    assert sweep.local_slots(4) == [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}] * 4
    assert len(sweep.local_slots(None)) == 1
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert sweep.local_slots(None) == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert [s["CUDA_VISIBLE_DEVICES"] for s in sweep.local_slots(3)] == ["0", "1", "0"]


# ---- the Slurm path, through submitit's local executor ----

def test_components_and_group_job(tmp_path):
    from experiments.slurm_job import GroupFailed, GroupJob

    (a1, a2), (b1, b2) = pair(tmp_path, "a"), pair(tmp_path, "b")
    groups = sweep.components([a1, b1, a2, b2])
    assert [[r.run_id for r in g] for g in groups] == [[a1.run_id, a2.run_id], [b1.run_id, b2.run_id]]
    assert GroupJob(groups[0], REPO_ROOT)() == {a1.run_id: "done", a2.run_id: "done"}
    assert a2.finished and a1.log_path.read_text().startswith("# ")
    assert GroupJob(groups[0], REPO_ROOT)() == {a1.run_id: "skipped", a2.run_id: "skipped"}  # a rerun continues
    tmp_path.joinpath(f"FAIL_{b1.run_id.replace('/', '_')}").write_text("")
    with pytest.raises(GroupFailed, match=f"{b1.run_id} failed; {b2.run_id} blocked"):
        GroupJob(groups[1], REPO_ROOT)()
    assert not b2.log_path.exists()  # never started: its dependency failed

    killed = dataclasses.replace(fake_run(tmp_path, "c/seed1"),
                                 argv=(sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"))
    after = fake_run(tmp_path, "d/seed1")
    with pytest.raises(GroupFailed, match="c/seed1 was stopped by signal SIGTERM"):
        GroupJob([killed, after], REPO_ROOT)()
    assert not after.log_path.exists()  # a job being stopped starts nothing more


def test_submitit_local_executor_runs_dependency_groups(tmp_path):
    root = tmp_path / "out"
    (a_train, a_test), (b_train, b_test) = pair(root, "a"), pair(root, "b")
    root.mkdir()
    (root / f"FAIL_{b_train.run_id.replace('/', '_')}").write_text("")
    messages = []
    outcomes = sweep.run_submitit([a_train, a_test, b_train, b_test], root / ".submitit",
                                  SlurmOptions(time_min=5, gpus_per_run=0, cpus_per_run=1, poll_s=0.2),
                                  cluster="local", say=messages.append)
    assert {k: o.status for k, o in outcomes.items()} == {
        a_train.run_id: "done", a_test.run_id: "done", b_train.run_id: "failed", b_test.run_id: "blocked"}, messages
    assert a_test.finished and "fake train" in a_test.log_path.read_text()
    assert sum(m.startswith("submitted job") for m in messages) == 2


# A resumable stand-in for train.py: EPOCHS epochs of EPOCH_S seconds, a checkpoint (the epoch count) written
# atomically after each, resumed from on start; every start is appended to starts.txt with the parent's pid (the
# submitit task running the GroupJob), and results.json is written at the end.
RESUMABLE_TRAIN = """
import json, os, sys, time
out, epochs, epoch_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.makedirs(out, exist_ok=True)
ckpt = os.path.join(out, "ckpt")
start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
with open(os.path.join(out, "starts.txt"), "a") as f:
    f.write(f"{start} {os.getppid()}\\n")
for epoch in range(start, epochs):
    time.sleep(epoch_s)
    open(ckpt + ".tmp", "w").write(str(epoch + 1))
    os.replace(ckpt + ".tmp", ckpt)
json.dump({"metrics": {"accuracy": 70.0}}, open(os.path.join(out, "results.json"), "w"))
"""


def test_slurm_job_is_requeued_on_preemption_and_resumes(tmp_path):
    """submitit's local executor; the job's task gets USR2 as Slurm sends it before a timeout or preemption."""
    import os
    import signal
    import threading
    import time

    root = tmp_path / "out"
    train = dataclasses.replace(fake_run(root, "base2new/train_base/r/seed1"),
                                argv=(sys.executable, "-c", RESUMABLE_TRAIN, str(root / "base2new/train_base/r/seed1"),
                                      "8", "0.4"))
    test = fake_run(root, "base2new/test_new/r/seed1", 60.0, depends_on=train)
    starts = train.output_dir / "starts.txt"
    signalled = []

    def preempt():  # once two epochs are checkpointed, signal the task that runs the group
        deadline = time.time() + 40
        while time.time() < deadline:
            ckpt = train.output_dir / "ckpt"
            if ckpt.is_file() and ckpt.read_text() in ("2", "3", "4"):
                os.kill(int(starts.read_text().split()[1]), signal.SIGUSR2)
                signalled.append(int(ckpt.read_text()))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=preempt, daemon=True)
    thread.start()
    messages = []
    outcomes = sweep.run_submitit([train, test], root / ".submitit",
                                  SlurmOptions(time_min=5, gpus_per_run=0, cpus_per_run=1, poll_s=0.2),
                                  cluster="local", say=messages.append)
    thread.join(timeout=1)
    assert signalled, "the run never reached its second epoch"
    assert {k: o.status for k, o in outcomes.items()} == {train.run_id: "done", test.run_id: "done"}, messages
    resumed_from = [int(line.split()[0]) for line in starts.read_text().splitlines()]
    assert resumed_from[0] == 0 and len(resumed_from) == 2 and resumed_from[1] >= signalled[0]  # resumed, not redone
    assert (train.output_dir / "ckpt").read_text() == "8" and train.finished and test.finished
    log = train.log_path.read_text()
    assert log.count("tools.sweep:") == 2 and "# requeued job, start 2" in log
    submitit_log = "".join(p.read_text() for p in (root / ".submitit").glob("*_log.out"))
    assert "Requeued job" in submitit_log


def _parent_of_process_writing(out_dir: Path) -> int:
    """The parent pid of the live process whose command line names ``out_dir`` (Linux /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(out_dir) in (proc / "cmdline").read_text():
                return int(next(line.split()[1] for line in (proc / "status").read_text().splitlines()
                                if line.startswith("PPid:")))
        except OSError:
            continue
    raise LookupError(out_dir)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="finds the job's process through /proc")
def test_slurm_job_requeue_resumes_a_real_train_py_run(tmp_path):
    """The same protocol with train.py itself (tiny random CLIP): preempted after epoch 2, the requeued job resumes
    the run, which ends with every epoch's metrics line once and results.json."""
    import os
    import signal
    import threading
    import time

    from tests.helpers import TINY_OPTS, TINY_VIT, make_color_dataset

    data, root = tmp_path / "data", tmp_path / "out"
    make_color_dataset(str(data))
    out = root / "fewshot/r/seed1"
    code = "import sys, tests.helpers, train; sys.exit(train.main(sys.argv[1:]))"
    argv = (sys.executable, "-c", code, "--root", str(data), "--output-dir", str(out), "--seed", "1", "--trainer",
            "CoOp", "--backbone", TINY_VIT, "DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "6",
            "TRAINER.COOP.N_CTX", "2", *TINY_OPTS)
    run = dataclasses.replace(fake_run(root, "fewshot/r/seed1"), argv=argv)
    signalled = []

    def preempt():
        deadline = time.time() + 240
        while time.time() < deadline:
            if (out / "prompt_learner/model.pth.tar-2").is_file():
                os.kill(_parent_of_process_writing(out), signal.SIGUSR2)
                signalled.append(True)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=preempt, daemon=True)
    thread.start()
    outcomes = sweep.run_submitit([run], root / ".submitit", SlurmOptions(time_min=10, gpus_per_run=0,
                                                                         cpus_per_run=1, poll_s=0.5),
                                  cluster="local", say=lambda m: None)
    thread.join(timeout=1)
    assert signalled and outcomes[run.run_id].status == "done", run.log_path.read_text()[-3000:]
    log = run.log_path.read_text()
    assert "# requeued job, start 2" in log
    assert "epoch [1/6]" not in log.split("# requeued job, start 2")[1]  # resumed, not started over
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "results.json").read_text())["epoch"] == 6


# ---- corrupt files ----

def test_corrupt_results_are_moved_aside_and_the_run_redone(tmp_path, capsys):
    root = tmp_path / "out"
    (a_train, a_test), (b_train, b_test) = pair(root, "a"), pair(root, "b")
    for run in (a_train, a_test, b_train, b_test):
        run.output_dir.mkdir(parents=True)
        (run.output_dir / "results.json").write_text('{"metrics": {"accuracy": 80.0}}')
    (a_train.output_dir / "results.json").write_text('{"metrics": {"accur')  # half-written
    assert not a_train.finished and b_train.finished

    messages = []
    assert sweep.execute([a_train, a_test, b_train, b_test], root, jobs=1, dry_run=True, say=messages.append) == 0
    assert f"# redo (its results.json does not parse): {a_train.run_id}" in messages
    assert not list(a_train.output_dir.glob("results.json.corrupt-*"))  # a dry run changes nothing

    assert sweep.execute([a_train, a_test, b_train, b_test], root, jobs=1, say=messages.append) == 0
    aside = list(a_train.output_dir.glob("results.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == '{"metrics": {"accur'
    assert json.loads((a_train.output_dir / "results.json").read_text())["metrics"]["accuracy"] == 80.0
    out = capsys.readouterr().out
    assert "Sweep finished: 1 done, 0 failed, 0 blocked." in out
    assert f"Redone because their results.json did not parse (the old file was kept):\n  {a_train.run_id}: done; " \
           f"old file: {aside[0]}" in out
    assert sweep.execute([a_train, a_test, b_train, b_test], root, jobs=1, say=messages.append) == 0
    assert messages[-1] == "Nothing to run: every run is finished."


def test_corrupt_failure_record_gives_a_clear_message(tmp_path, capsys):
    root = tmp_path / "out"
    root.mkdir()
    (root / sweep.FAILURES_FILE).write_text('{"runs": {"x": {"status": "fai')
    assert sweep.main(["--retry-failed", "--output", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {root / sweep.FAILURES_FILE} is not a valid failure record (JSONDecodeError")
    assert "move it aside or delete it" in err and len(err.splitlines()) == 1

    run = fake_run(root, "x/seed1")  # a sweep that ends with a corrupt record moves it aside and writes a new one
    root.joinpath(f"FAIL_{run.run_id.replace('/', '_')}").write_text("")
    messages = []
    assert sweep.execute([run], root, jobs=1, say=messages.append) == 1
    aside = list(root.glob(f"{sweep.FAILURES_FILE}.corrupt-*"))
    assert len(aside) == 1 and any(m.startswith("warning: ") and str(aside[0]) in m for m in messages)
    assert set(json.loads((root / sweep.FAILURES_FILE).read_text())["runs"]) == {run.run_id}


def test_slurm_launcher_without_sbatch_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "_which", lambda program: None)
    with pytest.raises(SweepError, match="sbatch"):
        sweep.run_submitit([fake_run(tmp_path, "x/seed1")], tmp_path / "s", SlurmOptions())


# ---- real runs: train.py on the toy benchmark with the toy configs ----

REAL = ["configs/trainers/CoOp/toy.yaml", "configs/datasets/toy_shapes.yaml", "clip/pretrained/toyclip.pt"]


@pytest.mark.slow
def test_local_runner_executes_real_toy_runs(tmp_path):
    missing = [p for p in REAL if not (REPO_ROOT / p).is_file()]
    if missing:
        pytest.skip(f"toy configs / weights not present yet: {', '.join(missing)}")
    code = sweep.main(["--protocol", "base2new", "--trainers", "CoOp", "ZeroshotCLIP", "--datasets", "toy_shapes",
                       "--seeds", "1", "--config", "toy", "--root", str(tmp_path / "data"),
                       "--output", str(tmp_path / "out"), "--jobs", "2", "--opts", "OPTIM.MAX_EPOCH", "1"])
    assert code == 0
    out = tmp_path / "out" / variant_folder(None, ("OPTIM.MAX_EPOCH", "1")) / "base2new"
    train = out / "train_base/toy_shapes/shots_16/CoOp/toy/seed1"
    new = out / "test_new/toy_shapes/shots_16/CoOp/toy/seed1"
    for run_dir in (train, new, out / "test_base/toy_shapes/shots_16/ZeroshotCLIP/toy/seed1",
                    out / "test_new/toy_shapes/shots_16/ZeroshotCLIP/toy/seed1"):
        res = json.loads((run_dir / "results.json").read_text())
        assert 0.0 <= res["metrics"]["accuracy"] <= 100.0
        assert (run_dir / "run.log").is_file()
    assert json.loads((train / "results.json").read_text())["subsample_classes"] == "base"
    new_res = json.loads((new / "results.json").read_text())
    assert new_res["subsample_classes"] == "new" and new_res["eval_only"] is True
    assert [json.loads(line)["epoch"] for line in (train / "metrics.jsonl").read_text().splitlines()] == [1]
    # a second sweep finds everything finished and runs nothing
    assert sweep.main(["--protocol", "base2new", "--trainers", "CoOp", "--datasets", "toy_shapes", "--seeds", "1",
                       "--config", "toy", "--root", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
                       "--opts", "OPTIM.MAX_EPOCH", "1"]) == 0


# ---- the demo's discovery of toy datasets and trainers ----

def test_demo_discovers_toy_configs(tmp_path):
    from experiments import demo

    configs = tmp_path / "configs"
    for rel in ("datasets/toy_b.yaml", "datasets/toy_a.yaml", "datasets/dtd.yaml", "trainers/CoOp/toy.yaml",
                "trainers/MaPLe/toy.yaml", "trainers/Aple/toy.yaml", "trainers/VPT/vit_b16.yaml"):
        (configs / rel).parent.mkdir(parents=True, exist_ok=True)
        (configs / rel).write_text("{}\n")
    assert demo.toy_datasets(configs) == ["toy_a", "toy_b"]
    assert demo.toy_trainers(configs) == ["ZeroshotCLIP", "CoOp", "Aple", "MaPLe"]
    (configs / "trainers/CoOp/toy.yaml").unlink()
    with pytest.raises(demo.DemoError, match="trainers/CoOp/toy.yaml"):
        demo.toy_trainers(configs)


def test_demo_refuses_to_reuse_runs_made_from_other_inputs(tmp_path):
    from experiments import demo
    from experiments.protocols import CONFIGS_DIR, Settings, expand

    configs = tmp_path / "configs"
    for rel in ("datasets/toy_shapes.yaml", "trainers/CoOp/toy.yaml", "trainers/MaPLe/toy.yaml"):
        (configs / rel).parent.mkdir(parents=True, exist_ok=True)
        (configs / rel).write_text((CONFIGS_DIR / rel).read_text())
    weights = tmp_path / "toyclip.pt"
    weights.write_bytes(b"weights v1")
    out = tmp_path / "out"
    settings = Settings(data_root=tmp_path / "data", output_root=out, configs_dir=configs)
    runs = expand("base2new", ["CoOp", "MaPLe"], ["toy_shapes"], [1], settings, config="toy")
    prints = demo.input_fingerprints(runs, weights)
    assert set(prints) == {"CoOp", "MaPLe"} and prints["CoOp"] != prints["MaPLe"]

    demo.check_inputs(out, runs, prints)  # nothing finished yet: records the inputs
    coop = next(r for r in runs if r.trainer == "CoOp")
    coop.output_dir.mkdir(parents=True)
    (coop.output_dir / "results.json").write_text("{}")
    demo.check_inputs(out, runs, demo.input_fingerprints(runs, weights))  # same inputs: reuse is fine

    (configs / "trainers/MaPLe/toy.yaml").write_text((configs / "trainers/MaPLe/toy.yaml").read_text() + "\n# x\n")
    changed = demo.input_fingerprints(runs, weights)
    assert changed["CoOp"] == prints["CoOp"] and changed["MaPLe"] != prints["MaPLe"]
    demo.check_inputs(out, runs, changed)  # MaPLe changed but has no finished run

    weights.write_bytes(b"weights v2")
    with pytest.raises(demo.DemoError, match=r"finished CoOp runs made with another toyclip"):
        demo.check_inputs(out, runs, demo.input_fingerprints(runs, weights))
    assert (coop.output_dir / "results.json").is_file()  # nothing was deleted

    (out / demo.INPUTS_FILE).unlink()  # outputs of a demo that did not record its inputs
    with pytest.raises(demo.DemoError, match="CoOp"):
        demo.check_inputs(out, runs, prints)


def test_demo_with_other_seeds_reuses_the_runs_it_shares(tmp_path):
    """Seeds and trainers are part of each run's config (checked by the sweep), not of the demo's inputs: a demo
    over seeds 1-3 after one over seed 1 is no reason to refuse."""
    from experiments import demo
    from experiments.protocols import Settings, expand

    weights = tmp_path / "toyclip.pt"
    weights.write_bytes(b"weights v1")
    out = tmp_path / "out"
    settings = Settings(data_root=tmp_path / "data", output_root=out)
    first = expand("base2new", ["CoOp"], ["toy_shapes"], [1], settings, config="toy")
    demo.check_inputs(out, first, demo.input_fingerprints(first, weights))
    for run in first:
        run.output_dir.mkdir(parents=True)
        (run.output_dir / "results.json").write_text("{}")
    more = expand("base2new", ["CoOp"], ["toy_shapes"], [1, 2, 3], settings, config="toy")
    demo.check_inputs(out, more, demo.input_fingerprints(more, weights))


# ---- overall progress with ETA ----

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_line_eta_is_mean_duration_times_runs_left_over_parallel_slots():
    clock = FakeClock()
    progress = sweep.Progress(total=5, jobs=2, clock=clock)
    assert progress.line() == "progress: 0/5 runs finished, 0s elapsed; ETA after the first run finishes"
    progress.started("a"), progress.started("b")
    clock.now += 30
    assert progress.finished("a") == 30
    progress.count("done")
    # mean 30 s x 4 runs left / 2 slots = 60 s
    assert progress.line(running=1) == ("progress: 1/5 runs finished (1 done), 1 running, 30s elapsed; ETA 1m00s "
                                        "(mean 30s per run x 4 left / 2 parallel)")
    progress.started("c")
    clock.now += 60
    progress.finished("b")  # 90 s
    progress.count("failed")
    progress.count("blocked")  # never started: not part of the mean
    # mean (30 + 90) / 2 = 60 s x 2 left / 2 = 60 s
    assert progress.line(running=1).endswith("1 running, 1m30s elapsed; ETA 1m00s (mean 1m00s per run x 2 left / "
                                             "2 parallel)")
    assert "(1 done, 1 failed, 1 blocked)" in progress.line()
    progress.started("d")
    clock.now += 3600
    progress.finished("c")
    progress.count("done")
    # mean (30 + 90 + 3660) / 3 = 1260 s x 1 left / min(2 slots, 1 left) = 21m00s
    assert progress.line(running=1).endswith("1h01m elapsed; ETA 21m00s (mean 21m00s per run x 1 left / 1 parallel)")
    clock.now += 5
    progress.finished("d")
    progress.count("done")
    assert progress.line() == "progress: 5/5 runs finished (3 done, 1 failed, 1 blocked), 1h01m elapsed"


def test_local_queue_prints_a_progress_line_after_each_run(tmp_path):
    runs = [*pair(tmp_path, "a"), *pair(tmp_path, "b")]
    messages = []
    sweep.run_local(runs, [{"CUDA_VISIBLE_DEVICES": ""}] * 2, say=messages.append, poll_s=0.05, runner="process")
    finished = [i for i, m in enumerate(messages) if m.startswith("[")]
    assert len(finished) == 4 and all(messages[i + 1].startswith("progress: ") for i in finished)
    assert messages[finished[0] + 1].startswith("progress: 1/4 runs finished (1 done)") and "ETA " in \
        messages[finished[0] + 1]
    assert messages[-1].startswith("progress: 4/4 runs finished (4 done)") and "ETA" not in messages[-1]
