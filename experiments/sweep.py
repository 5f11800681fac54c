"""Run a grid of experiments: ``python -m tools.sweep``.

The grid (protocol x trainers x datasets x seeds x shots, from flags or a YAML file) is expanded by
:func:`experiments.protocols.expand` into the same runs the ``scripts/*.sh`` wrappers make. Unfinished runs are started
again and ``train.py`` resumes them from their last checkpoint. A finished run (its ``results.json`` parses) is
skipped only when it is the run asked for: its recorded result-relevant config equals the one this sweep builds
(:func:`identity_diff`). Runs that ``--backbone`` or ``--opts`` change live under their own
``variants/<setting>-<digest>/`` folder (:func:`experiments.protocols.variant_folder`), so they never meet the
protocol's own runs; a finished run of another config in the same folder (an edited YAML, a hand-made run) refuses the sweep
before anything runs, with the differing keys.

Launchers:

* ``local``: a queue over one slot per visible GPU (``CUDA_VISIBLE_DEVICES`` set per run; GPUs counted with
  ``torch.cuda.device_count()``), or ``--jobs N`` parallel CPU processes when there is no GPU. A run starts only
  when the runs it depends on have finished (test_new waits for its train_base).
* ``slurm``: one ``submitit`` job per connected group of dependent runs (a train_base and its test_new; an ImageNet
  source run and its targets), executed in dependency order inside the job. A job that times out or is preempted
  is requeued and resumes its runs from their checkpoints (:mod:`experiments.slurm_job`).

A run counts as finished only when its ``results.json`` parses: a corrupt one is moved aside to
``results.json.corrupt-<time>`` (:mod:`engine.run_results`), the run is redone and the summary lists it.

Each run's stdout and stderr go to ``<output_dir>/run.log``; the console shows a line per started and finished run
and an overall progress line with an ETA (:class:`Progress`). SIGTERM or SIGINT (Ctrl-C) stops every run and
worker of a local sweep (no process is left behind) and exits with 128 + the signal number; the same command
then resumes the stopped runs from their checkpoints. Runs that fail (or are blocked by a failed dependency)
are listed at the end with their log and command, and recorded in ``$OUTPUT/sweep_failures.json`` so that
``--retry-failed`` re-runs them alone; ``--only RUN_ID`` selects single runs.

Examples::

    python -m tools.sweep --protocol base2new --trainers CoOp CoCoOp --datasets all --seeds 1 2 3
    python -m tools.sweep --grid my_grid.yaml --launcher slurm --partition gpu --time-min 600
    python -m tools.sweep --retry-failed

A grid YAML holds the same keys as the flags, one mapping or a list under ``sweeps``::

    sweeps:
      - {protocol: base2new, trainers: [CoOp, MaPLe], datasets: all, seeds: [1, 2, 3]}
      - {protocol: fewshot, trainers: [CoOp], datasets: [oxford_pets], shots: [1, 2, 4, 8, 16],
         config: {CoOp: vit_b16}, opts: [OPTIM.MAX_EPOCH, 10]}
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TextIO

import yaml

from engine.run_results import RESULTS_FILE, is_corrupt, set_aside
from engine.utils.checkpoint import atomic_write_text
from experiments.protocols import REPO_ROOT, Run, Settings, expand, parse_seeds, parse_shots, variant_folder

FAILURES_FILE = "sweep_failures.json"
GRID_KEYS = {"protocol", "trainers", "datasets", "seeds", "shots", "config", "opts", "backbone"}


class SweepError(RuntimeError):
    """A sweep request that cannot be carried out; the message says what to do."""


class SweepStopped(KeyboardInterrupt):
    """The sweep received SIGTERM or SIGINT; raised in the main thread so that every run and worker is stopped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals():
    """The first SIGTERM or SIGINT raises :class:`SweepStopped`; later ones are ignored while the runs are being
    stopped (a second Ctrl-C must not cut the clean-up short and leave workers behind). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def handler(signum, frame):
        if not received:
            received.append(signum)
            raise SweepStopped(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


# ---------------------------------------------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    protocol: str
    trainers: Sequence[str]
    datasets: Sequence[str] = ("all",)
    seeds: Sequence[str] = ("all",)
    shots: Optional[Sequence[str]] = None
    config: object = None  # None, one config name, or {trainer: config}
    opts: Sequence[str] = ()
    backbone: Optional[str] = None

    def runs(self, settings: Settings) -> List[Run]:
        opts = tuple(settings.opts) + tuple(str(o) for o in self.opts)
        backbone = self.backbone or settings.backbone
        settings = dataclasses.replace(settings, opts=opts, backbone=backbone,
                                       variant=variant_folder(backbone, opts))
        return expand(self.protocol, self.trainers, self.datasets, parse_seeds([str(s) for s in self.seeds]),
                      settings, parse_shots([str(k) for k in self.shots] if self.shots else None), self.config)


def _as_list(value) -> List[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def grids_from_yaml(path: Path) -> List[Grid]:
    """Grids from a YAML file: one mapping, or a list of mappings under ``sweeps``."""
    if not path.is_file():
        raise SweepError(f"Grid file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    blocks = data.get("sweeps", [data]) if isinstance(data, dict) else None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise SweepError(f"{path}: expected a mapping of grid keys or a list of them under 'sweeps'.")
    grids = []
    for i, block in enumerate(blocks):
        unknown = set(block) - GRID_KEYS
        if unknown or "protocol" not in block or "trainers" not in block:
            problem = (f"unknown keys {', '.join(sorted(unknown))}" if unknown
                       else "'protocol' and 'trainers' are required")
            raise SweepError(f"{path}, grid {i + 1}: {problem}; allowed keys: {', '.join(sorted(GRID_KEYS))}.")
        config = block.get("config")
        grids.append(Grid(protocol=str(block["protocol"]), trainers=_as_list(block["trainers"]),
                          datasets=_as_list(block.get("datasets", "all")), seeds=_as_list(block.get("seeds", "all")),
                          shots=_as_list(block.get("shots")) or None,
                          config=config if isinstance(config, dict) or config is None else str(config),
                          opts=_as_list(block.get("opts")), backbone=block.get("backbone")))
    return grids


def ordered(runs: Sequence[Run]) -> List[Run]:
    """The runs without duplicates, each after the runs it depends on (otherwise in the given order)."""
    by_id = {r.run_id: r for r in runs}
    out: Dict[str, Run] = {}

    def visit(run: Run, path: tuple) -> None:
        if run.run_id in out:
            return
        if run.run_id in path:
            raise SweepError(f"Dependency cycle through {run.run_id}.")
        for dep in run.depends_on:
            if dep in by_id:
                visit(by_id[dep], path + (run.run_id,))
        out[run.run_id] = run

    for run in by_id.values():
        visit(run, ())
    return list(out.values())


# ---------------------------------------------------------------------------------------------------------------
# Failure record
# ---------------------------------------------------------------------------------------------------------------

def read_failures(path: Path) -> Dict[str, dict]:
    """The ``runs`` of a failure record; a file that is not one raises :class:`SweepError` saying what to do."""
    try:
        record = json.loads(path.read_text())["runs"]
        for entry in record.values():
            Run.from_dict(entry["run"])
        return record
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SweepError(f"{path} is not a valid failure record ({type(e).__name__}: {e}). It only lists runs to "
                         f"retry: move it aside or delete it, then run the sweep's grid again (finished runs are "
                         f"skipped, the others run).") from None


def load_failures(output_root: Path) -> List[Run]:
    path = output_root / FAILURES_FILE
    if not path.is_file():
        return []
    return [Run.from_dict(d["run"]) for d in read_failures(path).values()]


def update_failures(output_root: Path, outcomes: Dict[str, "Outcome"], say: Callable[[str], None] = print) -> None:
    """Drop runs that are now finished, record the ones that failed or were blocked. A corrupt record is moved
    aside (and said so) rather than stopping the sweep after its runs are done."""
    path = output_root / FAILURES_FILE
    try:
        record = read_failures(path) if path.is_file() else {}
    except SweepError as e:
        say(f"warning: {e} It was moved to {set_aside(path)}; a new record is written.")
        record = {}
    record = {k: v for k, v in record.items() if not Run.from_dict(v["run"]).finished}
    for run_id, outcome in outcomes.items():
        if outcome.ok:
            record.pop(run_id, None)
        else:
            record[run_id] = {"status": outcome.status, "detail": outcome.detail, "log": str(outcome.run.log_path),
                              "run": outcome.run.to_dict()}
    if record:
        output_root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps({"runs": record}, indent=1), str(path))
    elif path.exists():
        path.unlink()


# ---------------------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    run: Run
    status: str  # done, failed, blocked
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "done"


def accuracy_of(run: Run) -> str:
    try:
        metrics = json.loads((run.output_dir / RESULTS_FILE).read_text())["metrics"]
        return f"accuracy {float(metrics['accuracy']):.2f}%"
    except (OSError, ValueError, KeyError, TypeError):
        return "no accuracy in results.json"


def duration_text(seconds: float) -> str:
    """``42s``, ``4m10s``, ``2h05m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """The overall progress line of a local sweep, with an ETA::

        progress: 3/12 runs finished (2 done, 1 failed), 2 running, 1m40s elapsed; ETA 3m45s (mean 50s per run x 9
        left / 2 parallel)

    ETA = mean duration of the runs that finished so far (blocked runs never start and do not count) x runs left /
    parallel slots (at most the runs left). ``clock`` gives seconds (``time.monotonic``; a fake in tests).
    """

    def __init__(self, total: int, jobs: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.jobs, self.clock = total, max(1, jobs), clock
        self.t0 = clock()
        self.durations: List[float] = []
        self.counts: Dict[str, int] = {}
        self._started: Dict[str, float] = {}

    def started(self, run_id: str) -> float:
        self._started[run_id] = now = self.clock()
        return now

    def finished(self, run_id: str) -> float:
        """Record the end of a started run; returns its duration in seconds."""
        seconds = self.clock() - self._started.pop(run_id)
        self.durations.append(seconds)
        return seconds

    def count(self, status: str) -> None:
        """Count a run's outcome (done, failed, blocked)."""
        self.counts[status] = self.counts.get(status, 0) + 1

    def line(self, running: int = 0) -> str:
        finished = sum(self.counts.values())
        head = f"progress: {finished}/{self.total} runs finished"
        if self.counts:
            head += " (" + ", ".join(f"{n} {k}" for k, n in self.counts.items()) + ")"
        head += (f", {running} running" if running else "") + f", {duration_text(self.clock() - self.t0)} elapsed"
        left = self.total - finished
        if not left:
            return head
        if not self.durations:
            return f"{head}; ETA after the first run finishes"
        mean = sum(self.durations) / len(self.durations)
        parallel = min(self.jobs, left)
        return (f"{head}; ETA {duration_text(mean * left / parallel)} (mean {duration_text(mean)} per run x {left} "
                f"left / {parallel} parallel)")


def progress_line(count: int, total: int, outcome: Outcome) -> str:
    """``[ 3/12] done    RUN_ID (details)``; failed runs name their log."""
    detail = outcome.detail + (f"; log: {outcome.run.log_path}" if outcome.status == "failed" else "")
    return (f"[{count:>{len(str(total))}}/{total}] {outcome.status:<7} {outcome.run.run_id}"
            + (f" ({detail})" if detail else ""))


def local_slots(jobs: Optional[int]) -> List[Dict[str, str]]:
    """Environment overrides of each parallel slot: one per visible GPU, or ``jobs`` CPU processes.

    With GPUs, ``jobs`` (default: the GPU count) slots are spread over the GPUs round-robin. Without, each CPU
    process gets ``cpu_count // jobs`` threads unless ``OMP_NUM_THREADS`` is already set.
    """
    import torch

    n_gpu = torch.cuda.device_count()
    if n_gpu:
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        ids = visible[:n_gpu] if len(visible) >= n_gpu else [str(i) for i in range(n_gpu)]
        return [{"CUDA_VISIBLE_DEVICES": ids[i % n_gpu]} for i in range(jobs or n_gpu)]
    jobs = jobs or 1
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // jobs))
    return [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads} for _ in range(jobs)]


def run_local(runs: Sequence[Run], slots: Sequence[Dict[str, str]], say: Callable[[str], None] = print,
              poll_s: float = 0.2, runner: str = "warm", clock: Callable[[], float] = time.monotonic
              ) -> Dict[str, Outcome]:
    """Execute ``runs`` (dependencies first) with at most ``len(slots)`` at a time; returns their outcomes.

    ``runner`` ``warm``: one long-lived worker per slot runs them in-process (:mod:`experiments.warm_pool`);
    ``process``: a new ``python train.py`` process per run. After each finished run, a :class:`Progress` line.
    SIGTERM or SIGINT stops every running run and worker (their runs resume from their checkpoints) and raises
    :class:`SweepStopped`.
    """
    with stop_on_signals():
        return _run_local(runs, slots, say, poll_s, runner, clock)


def _run_local(runs, slots, say, poll_s, runner, clock) -> Dict[str, Outcome]:
    pool = None
    if runner == "warm":
        from experiments.warm_pool import WarmPool

        pool = WarmPool(slots)
    elif runner != "process":
        raise SweepError(f"Unknown runner {runner!r}; choose warm or process.")
    ids = {r.run_id for r in runs}
    total = len(runs)
    pending = list(runs)
    free = list(range(len(slots)))
    running: Dict[int, tuple] = {}
    outcomes: Dict[str, Outcome] = {}
    progress = Progress(total, len(slots), clock)

    def finish(outcome: Outcome) -> None:
        outcomes[outcome.run.run_id] = outcome
        progress.count(outcome.status)
        say(progress_line(len(outcomes), total, outcome))
        say(progress.line(running=len(running)))

    def blocker(run: Run) -> Optional[str]:
        for dep in run.depends_on:
            if dep in outcomes and not outcomes[dep].ok:
                return f"needs {dep}, which {outcomes[dep].status}"
        return None

    def ready(run: Run) -> bool:
        return all(dep not in ids or (dep in outcomes and outcomes[dep].ok) for dep in run.depends_on)

    try:
        while pending or running:
            for slot, (run, proc, _, log) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del running[slot]
                free.append(slot)
                seconds = progress.finished(run.run_id)
                if rc == 0 and run.finished:
                    finish(Outcome(run, "done", f"{seconds:.0f}s, {accuracy_of(run)}", seconds))
                else:
                    why = f"exit code {rc}" if rc else "exited 0 but wrote no results.json that parses"
                    finish(Outcome(run, "failed", why, seconds))
            for run in list(pending):
                reason = blocker(run)
                if reason:
                    pending.remove(run)
                    finish(Outcome(run, "blocked", reason))
                elif free and ready(run):
                    pending.remove(run)
                    slot = free.pop(0)
                    run.output_dir.mkdir(parents=True, exist_ok=True)
                    log = open(run.log_path, "a")
                    log.write(run.log_header())
                    log.flush()
                    if pool is not None and pool.accepts(run):
                        proc = pool.start(run, slot, log)
                    else:
                        env = {**os.environ, "PYTHONUNBUFFERED": "1", **slots[slot]}
                        proc = subprocess.Popen(run.argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                env=env)
                    running[slot] = (run, proc, progress.started(run.run_id), log)
                    where = slots[slot].get("CUDA_VISIBLE_DEVICES") or "cpu"
                    say(f"{'':>{2 * len(str(total)) + 3}} start   {run.run_id} (device {where})")
            if running:
                time.sleep(poll_s)
            elif pending and not any(ready(r) for r in pending):  # cannot happen with dependency-first order
                for run in list(pending):
                    pending.remove(run)
                    finish(Outcome(run, "blocked", "its dependencies never became ready"))
    finally:
        for run, proc, _, log in running.values():
            stop_process(proc)
            log.close()
        if pool is not None:
            pool.close()
    return outcomes


STOP_GRACE_S = 10.0  # seconds a stopped run gets after SIGTERM before SIGKILL


def stop_process(proc, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM a run's process (``subprocess.Popen`` or a warm handle), SIGKILL it after ``grace_s``, and reap it.
    ``train.py`` writes checkpoints atomically, so a stopped run resumes from its last complete epoch."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def components(runs: Sequence[Run]) -> List[List[Run]]:
    """Groups of runs connected by dependencies, each in the given (dependency-first) order."""
    parent = {r.run_id: r.run_id for r in runs}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in runs:
        for dep in r.depends_on:
            if dep in parent:
                parent[root(r.run_id)] = root(dep)
    groups: Dict[str, List[Run]] = {}
    for r in runs:
        groups.setdefault(root(r.run_id), []).append(r)
    return list(groups.values())


@dataclass(frozen=True)
class SlurmOptions:
    partition: Optional[str] = None
    time_min: int = 24 * 60
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: Optional[int] = None
    poll_s: float = 30.0


def run_submitit(runs: Sequence[Run], folder: Path, options: SlurmOptions, cluster: str = "slurm",
                 say: Callable[[str], None] = print) -> Dict[str, Outcome]:
    """Submit one :class:`experiments.slurm_job.GroupJob` per dependency group through ``submitit.AutoExecutor`` and
    wait for all of them; a job that times out or is preempted is requeued and resumes (see that module).

    ``cluster="slurm"`` submits with sbatch; ``cluster="local"`` uses submitit's local executor (for tests).
    """
    import submitit

    from experiments.slurm_job import GroupJob

    if cluster == "slurm" and not _which("sbatch"):
        raise SweepError("--launcher slurm needs a Slurm cluster, but 'sbatch' is not on PATH. "
                         "Run on a Slurm login node, or use --launcher local.")
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(name="prompt-sweep", timeout_min=options.time_min,
                               gpus_per_node=options.gpus_per_run, cpus_per_task=options.cpus_per_run,
                               mem_gb=options.mem_gb, slurm_partition=options.partition)
    groups = components(runs)
    with executor.batch():
        jobs = [executor.submit(GroupJob(g, REPO_ROOT)) for g in groups]
    job_groups = {job.job_id: group for job, group in zip(jobs, groups)}
    for job, group in zip(jobs, groups):
        say(f"submitted job {job.job_id}: {', '.join(r.run_id for r in group)}")
    outcomes: Dict[str, Outcome] = {}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=options.poll_s):
        try:
            job.result()
            note = ""
        except Exception:  # the job's own failure; each run is judged by its results.json below
            note = f"job {job.job_id} failed, see {job.paths.stderr}"
        for run in job_groups[job.job_id]:
            if run.finished:
                outcomes[run.run_id] = Outcome(run, "done", accuracy_of(run))
            else:
                failed_deps = [d for d in run.depends_on if d in outcomes and not outcomes[d].ok]
                outcomes[run.run_id] = (Outcome(run, "blocked", f"needs {failed_deps[0]}") if failed_deps else
                                        Outcome(run, "failed", note or "no results.json"))
            say(progress_line(len(outcomes), len(runs), outcomes[run.run_id]))
    return outcomes


def _which(program: str) -> Optional[str]:
    import shutil

    return shutil.which(program)


# ---------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------

def _train_args(run: Run) -> Optional[argparse.Namespace]:
    """``train.py``'s parsed arguments of the run (config files relative to the repository, where runs execute);
    None for a command that is not ``train.py``."""
    if len(run.argv) < 2 or os.path.basename(run.argv[1]) != "train.py":
        return None
    from engine.launch import build_parser

    args = build_parser().parse_args(list(run.argv[2:]))
    for name in ("config_file", "dataset_config_file"):
        value = getattr(args, name)
        if value and not os.path.isabs(value):
            setattr(args, name, str(REPO_ROOT / value))
    return args


def expected_config(run: Run) -> Optional[dict]:
    """The resolved config ``train.py`` builds from the run's argv, as plain values; None for a command that is not
    ``train.py``."""
    args = _train_args(run)
    if args is None:
        return None
    from engine.config_fingerprint import config_dict
    from engine.launch import setup_cfg
    from engine.errors import user_error_types

    try:
        return config_dict(setup_cfg(args))
    except user_error_types() as e:
        raise SweepError(f"{run.run_id}: {e}") from None


def identity_diff(run: Run) -> Optional[list]:
    """How a finished run differs from the run asked for: its result-relevant config
    (``engine.config_fingerprint.finished_run_diff``) and what an evaluation loads (``evaluation_diff``). ``[]``
    when it is that run (or the command is not ``train.py``, which records no config), ``None`` when its
    ``results.json`` records no config to check."""
    from engine.config_fingerprint import evaluation_diff, finished_run_diff
    from engine.run_results import read_results

    expected = expected_config(run)
    if expected is None:
        return []
    results = read_results(run.output_dir) or {}
    diff = finished_run_diff(results, expected)
    if diff is None:
        return None
    args = _train_args(run)
    return diff + evaluation_diff(results, args.eval_only, args.model_dir, args.load_epoch)


def foreign_runs_error(foreign: Sequence[tuple], output_root: Optional[Path] = None, limit: int = 5) -> SweepError:
    """The refusal for finished runs that are not the runs asked for: one line, then each run's differences."""
    from engine.config_fingerprint import format_diff

    output_root = output_root or foreign[0][0].output_root
    where = f" under {output_root}"
    lines = [f"{len(foreign)} finished run(s){where} are not the runs this sweep asks for (their results.json "
             f"records another config, or none); move those folders aside or choose another --output:"]
    for run, diff in foreign[:limit]:
        lines.append(f"{run.run_id}:")
        lines.append(format_diff(diff, limit=6) if diff else "  results.json records no config")
    if len(foreign) > limit:
        lines.append(f"... and {len(foreign) - limit} more")
    return SweepError("\n".join(lines))


def plan(runs: Sequence[Run], say: Callable[[str], None] = print) -> List[Run]:
    """The unfinished runs; says which finished ones are skipped and which are redone for a corrupt results.json.

    A finished run is reused only when it is the run asked for (:func:`identity_diff`); otherwise the sweep is
    refused (:class:`SweepError`) before anything runs, listing the differences."""
    todo, foreign = [], []
    for run in runs:
        if run.finished:
            diff = identity_diff(run)
            if diff or diff is None:
                foreign.append((run, diff))
            else:
                say(f"# skip (finished): {run.run_id}")
        else:
            if is_corrupt(run.output_dir):
                say(f"# redo (its {RESULTS_FILE} does not parse): {run.run_id}")
            todo.append(run)
    if foreign:
        raise foreign_runs_error(foreign)
    return todo


def set_aside_corrupt(todo: Sequence[Run], say: Callable[[str], None] = print) -> Dict[str, Path]:
    """Move each unparsable ``results.json`` of ``todo`` aside; returns ``{run_id: new path}``."""
    moved = {}
    for run in todo:
        if is_corrupt(run.output_dir):
            moved[run.run_id] = set_aside(run.output_dir / RESULTS_FILE)
            say(f"# moved aside: {moved[run.run_id]}")
    return moved


def unrunnable(todo: Sequence[Run]) -> Dict[str, Outcome]:
    """Runs whose dependency is neither finished nor in ``todo`` (directly or through another such run)."""
    ids = {r.run_id for r in todo}
    blocked: Dict[str, Outcome] = {}
    changed = True
    while changed:
        changed = False
        for run in todo:
            if run.run_id in blocked:
                continue
            for dep in run.depends_on:
                if dep in blocked or (dep not in ids and not run.dependency_finished(dep)):
                    why = "is blocked" if dep in blocked else "is neither finished nor part of this sweep"
                    blocked[run.run_id] = Outcome(run, "blocked", f"needs {dep}, which {why}")
                    changed = True
                    break
    return blocked


def report(outcomes: Dict[str, Outcome], output_root: Path, stream: Optional[TextIO] = None,
           set_aside_files: Optional[Dict[str, Path]] = None) -> int:
    """Print the summary, the runs redone for a corrupt results.json and the failed runs (log path and exact
    command); returns the exit status."""
    stream = stream or sys.stdout
    counts = {s: sum(o.status == s for o in outcomes.values()) for s in ("done", "failed", "blocked")}
    print(f"\nSweep finished: {counts['done']} done, {counts['failed']} failed, {counts['blocked']} blocked.",
          file=stream)
    if set_aside_files:
        print(f"\nRedone because their {RESULTS_FILE} did not parse (the old file was kept):", file=stream)
        for run_id, path in set_aside_files.items():
            status = outcomes[run_id].status if run_id in outcomes else "not run"
            print(f"  {run_id}: {status}; old file: {path}", file=stream)
    bad = [o for o in outcomes.values() if not o.ok]
    if not bad:
        return 0
    for o in bad:
        print(f"\n{o.status.upper()}: {o.run.run_id}\n  {o.detail}\n  log:     {o.run.log_path}\n"
              f"  command: {o.run.command}", file=stream)
    print(f"\nRe-run them alone with: python -m tools.sweep --retry-failed --output {shlex.quote(str(output_root))}",
          file=stream)
    return 1


def execute(runs: Sequence[Run], output_root: Path, *, launcher: str = "local", jobs: Optional[int] = None,
            dry_run: bool = False, slurm: SlurmOptions = SlurmOptions(), cluster: str = "slurm",
            say: Callable[[str], None] = print, runner: str = "warm") -> int:
    """Skip finished runs, run (or print, with ``dry_run``) the others, record and report failures."""
    runs = ordered(runs)
    todo = plan(runs, say)
    if dry_run:
        for run in todo:
            say(run.command)
        return 0
    if not todo:
        say("Nothing to run: every run is finished.")
        return 0
    moved = set_aside_corrupt(todo, say)
    blocked = unrunnable(todo)
    todo = [r for r in todo if r.run_id not in blocked]
    say(f"{len(todo)} run(s) to execute with the {launcher} launcher.")
    if launcher == "local":
        outcomes = run_local(todo, local_slots(jobs), say, runner=runner)
    elif launcher == "slurm":
        outcomes = run_submitit(todo, output_root / ".submitit", slurm, cluster=cluster, say=say)
    else:
        raise SweepError(f"Unknown launcher {launcher!r}; choose local or slurm.")
    outcomes.update(blocked)
    update_failures(output_root, outcomes, say)
    return report(outcomes, output_root, set_aside_files=moved)


def report_stop(e: KeyboardInterrupt) -> int:
    """Say that a signal stopped the sweep (its runs stay resumable); the exit status is 128 + the signal number."""
    signum = getattr(e, "signum", signal.SIGINT)
    print(f"\nStopped by {signal.Signals(signum).name}: every run and worker of this sweep was stopped. Finished "
          f"runs are kept; the same command skips them and resumes the others from their checkpoints.",
          file=sys.stderr)
    return 128 + signum
