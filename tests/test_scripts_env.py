"""The protocol scripts run in the project's environment: ``.venv/bin/python`` (the quick start's) when it exists,
an explicit ``PYTHON`` when set, and never a ``python`` on PATH that lacks the requirements.

The runs are tiny: ToyTinted, seed 1, the toy config, one epoch and one shot (trailing ``KEY VALUE`` overrides).
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


@pytest.fixture
def env_without_torch(tmp_path):
    """An environment whose ``python`` on PATH is a shim that fails (as a system python without torch would), with
    no ``PYTHON`` set."""
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'shim python: no torch here' >&2\nexit 1\n")
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    env.update(PATH=f"{shim.parent}{os.pathsep}{os.environ['PATH']}", DATA=str(tmp_path / "data"),
               OUTPUT=str(tmp_path / "out"))
    return env


def run_script(args, env, cwd):
    return subprocess.run(["bash", str(REPO / "scripts" / "base2new.sh"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@pytest.mark.skipif(not VENV_PYTHON.exists(), reason="no .venv (bash scripts/test.sh creates it)")
def test_base2new_runs_with_the_venv_python_not_the_one_on_path(env_without_torch, tmp_path):
    env = env_without_torch
    on_path = subprocess.run(["python", "-c", "import torch"], capture_output=True, text=True, env=env)
    assert on_path.returncode == 1 and "shim python" in on_path.stderr  # the python on PATH cannot run the project
    res = run_script(["CoOp", "toy_tinted", "1", "toy", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "1"], env,
                     tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "shim python" not in res.stderr
    for role, half in (("train_base", "base"), ("test_new", "new")):
        # runs with overrides live under variants/<setting>/ (tools.sweep), with the usual layout below
        found = list((tmp_path / "out").glob(f"**/base2new/{role}/toy_tinted/**/CoOp/toy/seed1/results.json"))
        assert len(found) == 1, (role, found)
        assert json.loads(found[0].read_text())["subsample_classes"] == half
