"""SIGTERM and SIGINT to a real sweep (python -m tools.sweep, warm workers, the toy benchmark): every worker and run
stops, no process of the sweep is left behind, and the same command resumes the stopped run from its checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments.protocols import REPO_ROOT, settings_from_env
from experiments.sweep import Grid

OPTS = ("OPTIM.MAX_EPOCH", "8", "DATASET.NUM_SHOTS", "2")
REAL = ["configs/trainers/CoOp/toy.yaml", "configs/datasets/toy_shapes.yaml", "clip/pretrained/toyclip.pt"]


def session_processes(sid: int) -> dict:
    """``{pid: command line}`` of the live (not zombie) processes of session ``sid``, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found[int(entry)] = cmdline
    return found


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def epochs_saved(run_dir) -> list:
    try:
        return json.loads((run_dir / "checkpoints.json").read_text()).get("epochs") or []
    except (OSError, ValueError):
        return []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process table from /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_of_the_sweep_and_the_run_resumes(tmp_path, signum):
    missing = [p for p in REAL if not (REPO_ROOT / p).is_file()]
    if missing:
        pytest.skip(f"toy configs / weights not present: {', '.join(missing)}")
    root, out = tmp_path / "data", tmp_path / "out"
    argv = [sys.executable, "-m", "tools.sweep", "--protocol", "base2new", "--trainers", "CoOp", "--datasets",
            "toy_shapes", "--seeds", "1", "--config", "toy", "--root", str(root), "--output", str(out), "--jobs", "1",
            "--runner", "warm", "--opts", *OPTS]
    train = Grid("base2new", ["CoOp"], ["toy_shapes"], ["1"], config="toy").runs(
        settings_from_env(str(root), str(out), opts=OPTS))[0]
    console = open(tmp_path / "console.txt", "w")
    sweep = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
    left = {}
    try:
        wait_for(lambda: epochs_saved(train.output_dir), 300, f"a saved epoch in {train.output_dir}")
        workers = set(session_processes(sweep.pid)) - {sweep.pid}
        assert workers, "the sweep runs its run in a worker process of its session"
        os.kill(sweep.pid, signum)
        rc = sweep.wait(timeout=120)
        time.sleep(2 * 1.0)  # longer than a worker's parent poll (experiments.warm_pool.PARENT_POLL_S)
        left = session_processes(sweep.pid)
        assert left == {}, f"processes left behind by the sweep: {left}"
        assert rc == 128 + signum
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        for pid in left or session_processes(sweep.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        console.close()
    text = (tmp_path / "console.txt").read_text()
    assert f"Stopped by {signal.Signals(signum).name}" in text, text
    stopped_at = epochs_saved(train.output_dir)
    assert not (train.output_dir / "results.json").exists() and stopped_at[-1] < 8
    if signum != signal.SIGTERM:
        return  # resuming is the same after either signal; run it once
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Resumed from" in (train.output_dir / "log.txt").read_text()
    lines = (train.output_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))
    assert json.loads((train.output_dir / "results.json").read_text())["epoch"] == 8
