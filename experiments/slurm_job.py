"""One Slurm job of a sweep: a group of dependent runs, requeued on timeout or preemption.

``tools.sweep --launcher slurm`` submits one :class:`GroupJob` per connected group of runs (a train_base and its
test_new; an ImageNet source run and its targets). It follows submitit's checkpointing protocol
(``submitit.helpers.Checkpointable``, https://github.com/facebookincubator/submitit/blob/main/docs/checkpointing.md):
when Slurm signals a timeout or a preemption (``USR2``, sent ``signal_delay_s`` before the end), submitit calls
:meth:`GroupJob.checkpoint`, which stops the running ``train.py`` and returns a resubmission of the same group;
submitit then requeues the job (``scontrol requeue``), keeping its job id. The requeued job skips the runs that
are finished (their ``results.json`` parses) and starts the others again; ``train.py`` resumes each from the last
checkpoint in its output directory, so no finished epoch is trained twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from submitit.helpers import Checkpointable, DelayedSubmission

from experiments.protocols import Run
from experiments.sweep import _log_header

STOP_GRACE_S = 30.0  # seconds train.py gets after SIGTERM before SIGKILL when the job is checkpointed
POLL_S = 0.5


class GroupFailed(RuntimeError):
    """Some runs of the group failed; each run's own log says why."""


def stop(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``grace_s``, and reap it.

    Uses ``os.waitpid`` directly: this runs inside a signal handler that may have interrupted ``Popen.poll`` while
    it held its lock, so ``Popen``'s own methods could wait forever.
    """
    def gone() -> bool:
        try:
            return os.waitpid(proc.pid, os.WNOHANG)[0] == proc.pid
        except ChildProcessError:  # already reaped
            return True

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if gone():
            return
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if gone():
                return
            time.sleep(0.05)


class GroupJob(Checkpointable):
    """Run ``runs`` (dependency-first order) one after the other; a run whose dependency in the group did not
    finish is not started. Finished runs are skipped, so calling the job again continues where it stopped.

    Returns ``{run_id: "done" | "skipped" | "failed" | "blocked"}``; raises :class:`GroupFailed` when any run
    failed or was blocked (the sweep then judges each run by its ``results.json``), and at once when a run is
    killed by a signal (on Slurm, a preemption sends SIGTERM to every process of the job before requeueing it).
    """

    def __init__(self, runs: Sequence[Run], cwd: Path):
        self.runs: List[Run] = list(runs)
        self.cwd = Path(cwd)
        self.starts = 0  # how many times the job has started (1 + requeues); kept across requeues
        self._proc: Optional[subprocess.Popen] = None

    def __call__(self) -> Dict[str, str]:
        self.starts += 1
        ids = {r.run_id for r in self.runs}
        status: Dict[str, str] = {}
        for run in self.runs:
            if run.finished:
                status[run.run_id] = "skipped"
                continue
            if any(dep in ids and not run.dependency_finished(dep) for dep in run.depends_on):
                status[run.run_id] = "blocked"
                continue
            rc = self._execute(run)
            if rc < 0:  # killed by a signal: Slurm is stopping the job (preemption, cancel); start nothing more
                raise GroupFailed(f"{run.run_id} was stopped by signal {signal.Signals(-rc).name}; a requeued job "
                                  f"resumes it from its checkpoint")
            status[run.run_id] = "done" if rc == 0 and run.finished else "failed"
        bad = {k: v for k, v in status.items() if v in ("failed", "blocked")}
        if bad:
            raise GroupFailed("; ".join(f"{k} {v}" for k, v in bad.items()))
        return status

    def _execute(self, run: Run) -> int:
        """Run one ``train.py`` with its output appended to ``run.log``; returns its exit code.

        The child is polled rather than waited for, so that submitit's signal handler (:meth:`checkpoint`) runs
        promptly in this thread and never finds ``Popen.wait`` blocked inside the handler's own thread.
        """
        run.output_dir.mkdir(parents=True, exist_ok=True)
        with open(run.log_path, "a") as log:
            log.write(_log_header(run) + (f"# requeued job, start {self.starts}\n" if self.starts > 1 else ""))
            log.flush()
            self._proc = subprocess.Popen(run.argv, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                while self._proc.poll() is None:
                    time.sleep(POLL_S)
                return self._proc.returncode
            finally:
                self._proc = None

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        """Stop the running ``train.py`` (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`) and resubmit this group.

        Killing is safe: ``train.py`` writes its checkpoints atomically and resumes from the last complete epoch.
        Stopping it here keeps two processes from ever training in the same output directory.
        """
        if self._proc is not None:
            stop(self._proc)
        return DelayedSubmission(self, *args, **kwargs)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_proc"] = None  # a process is not part of what a requeued job resumes from
        return state
