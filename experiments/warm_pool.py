"""Warm local executor for ``tools.sweep``: one long-lived worker process per slot runs ``train.py`` in-process.

A run started as a new process pays for importing torch and open_clip and for building the backbone each time;
on a loaded 2-core machine that is most of an eval-only toy run. A worker here imports them once and then
executes run after run, each exactly as ``python train.py ARGS`` would:

- each run calls ``train.main(ARGS)``, which seeds every RNG from the run's own seed, logs to its own output
  directory and writes its own results; the run's stdout and stderr (file descriptors 1 and 2) go to its
  ``run.log``; global switches a run may set (deterministic algorithms, cuDNN flags) are reset before the next;
- backbones are reused across runs of a worker: the first load of a backbone keeps a master copy, and later runs
  get a deep copy of it. Building a CLIP draws from torch's RNG (module initialisation), so an entry is keyed by
  the torch RNG state before the load as well, and a reuse leaves the RNG exactly where a real load leaves it:
  a warm run is the same computation as a fresh process (``tests/test_warm_pool.py`` compares them). A weights
  file that changes on disk (size or modification time) is loaded again;
- a run that raises ends with exit status 1 (its traceback in ``run.log``); a worker that dies (a segfault, the
  OOM killer) fails only its current run and is replaced by a fresh one before the slot's next run;
- stopping: the sweep stops a worker with SIGTERM (SIGKILL after a grace period), which ends its run where it is
  (the run resumes from its last checkpoint). Workers ignore SIGINT, so that a Ctrl-C reaches the sweep alone and
  the sweep stops them; a worker whose sweep is gone (killed with SIGKILL, say) stops itself within a second.

Slots are the same as the per-process runner's (``CUDA_VISIBLE_DEVICES`` and ``OMP_NUM_THREADS`` per slot), fixed
for the life of a worker. ``python -m tools.sweep --runner process`` keeps the one-process-per-run runner.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import gc
import hashlib
import importlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from typing import Callable, Dict, Optional, Sequence

from experiments.protocols import REPO_ROOT, Run

RUN_TRAIN = "experiments.warm_pool:run_train"
MAX_BACKBONES = 4  # master copies a worker keeps (least recently used dropped first)


# ---------------------------------------------------------------------------------------------------------------
# Inside a worker
# ---------------------------------------------------------------------------------------------------------------

def _weights_stamp(name: str, cache_dir: Optional[str]) -> tuple:
    """(size, mtime) of the file a backbone name reads, where there is one."""
    from clip.loading import OPENAI_MODELS, default_cache_dir

    path = name if os.path.isfile(name) else None
    if name in OPENAI_MODELS:
        path = os.path.join(default_cache_dir(cache_dir), OPENAI_MODELS[name][1])
    if ":" in name and not name.startswith("random:") and os.path.isfile(name.split(":", 1)[1]):
        path = name.split(":", 1)[1]
    if path and os.path.isfile(path):
        st = os.stat(path)
        return (path, st.st_size, st.st_mtime_ns)
    return ()


class BackboneReuse:
    """``clip.load`` with reuse: ``(name, cache_dir, weights file stamp, torch RNG state)`` -> (master, RNG after)."""

    def __init__(self, load: Callable, max_entries: int = MAX_BACKBONES):
        self._load = load
        self._entries: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
        self.max_entries = max_entries
        self.hits = self.misses = 0

    def __call__(self, name: str, cache_dir: Optional[str] = None):
        import torch

        before = torch.get_rng_state()
        key = (name, cache_dir or "", _weights_stamp(name, cache_dir), hashlib.sha1(before.numpy().tobytes()).hexdigest())
        if key in self._entries:
            self._entries.move_to_end(key)
            master, after = self._entries[key]
            torch.set_rng_state(after)
            self.hits += 1
            print(f"warm worker: backbone {name} reused (no reload)", file=sys.stderr, flush=True)
            return copy.deepcopy(master)
        backbone = self._load(name, cache_dir)
        self._entries[key] = (copy.deepcopy(backbone), torch.get_rng_state())
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self.misses += 1
        return backbone


def install_backbone_reuse() -> BackboneReuse:
    """Route this process's ``clip.load`` (what trainers call) through a :class:`BackboneReuse`."""
    import clip

    reuse = BackboneReuse(clip.load)
    clip.load = reuse
    return reuse


def run_train(argv: Sequence[str]) -> int:
    """``python train.py ARGS`` in this process (``argv`` is the run's full argv)."""
    import train

    if len(argv) < 2 or os.path.basename(argv[1]) != "train.py":
        raise ValueError(f"The warm runner executes train.py runs only; got {list(argv[:2])}.")
    return int(train.main(list(argv[2:])) or 0)


def _reset_globals() -> None:
    """Switches a previous run may have set (engine.utils.set_random_seed with deterministic=True)."""
    import torch

    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False


@contextlib.contextmanager
def _output_to(log_path: str):
    """File descriptors 1 and 2 (and so sys.stdout/stderr, logging and C-level output) appended to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute_one(fn: Callable[[Sequence[str]], int], argv: Sequence[str], log_path: str) -> int:
    from engine.utils import setup_logger

    _reset_globals()
    with _output_to(log_path):
        try:
            rc = fn(argv)
        except SystemExit as e:  # argparse errors and explicit exits
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception:  # noqa: BLE001 - the run fails, the worker lives on
            traceback.print_exc()
            rc = 1
        finally:
            setup_logger("")  # close the run's log.txt handler
    gc.collect()
    return rc


def _resolve(target: str) -> Callable:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


PARENT_POLL_S = 1.0


def _exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Terminate this process (SIGTERM, its default action) once its parent sweep is gone."""
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main(conn, env: Dict[str, str], target: str) -> None:
    """A worker's loop: receive ``(argv, log_path)``, answer the exit status; ``None`` stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.environ.update(env)
    os.chdir(REPO_ROOT)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import torch

    if env.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    import train  # noqa: F401  (the imports every run needs, once)

    install_backbone_reuse()
    fn = _resolve(target)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        argv, log_path = msg
        conn.send(execute_one(fn, argv, log_path))


# ---------------------------------------------------------------------------------------------------------------
# In the sweep process
# ---------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _environ(env: Dict[str, str]):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Worker:
    def __init__(self, env: Dict[str, str], target: str):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        with _environ(env):  # CUDA_VISIBLE_DEVICES and thread counts before the child imports torch
            self.process = ctx.Process(target=worker_main, args=(child, env, target), daemon=True)
            self.process.start()
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, kill: bool = False, grace_s: float = 10.0) -> None:
        """Idle: ask it to exit. ``kill`` (or no answer in ``grace_s``): SIGTERM, then SIGKILL after ``grace_s``."""
        if self.process.is_alive() and not kill:
            with contextlib.suppress(OSError, BrokenPipeError):
                self.conn.send(None)
            self.process.join(timeout=grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class WarmHandle:
    """What ``tools.sweep.run_local`` polls: like ``subprocess.Popen`` (``poll``, ``terminate``, ``wait``)."""

    def __init__(self, pool: "WarmPool", slot: int):
        self.pool, self.slot, self.returncode = pool, slot, None
        self._ready = False

    def poll(self) -> Optional[int]:
        if self.returncode is not None:
            return self.returncode
        worker = self.pool.workers[self.slot]
        try:
            while worker.conn.poll():
                msg = worker.conn.recv()
                if msg == "ready":
                    continue
                self.returncode = int(msg)
                return self.returncode
        except (EOFError, OSError):
            pass
        if not worker.alive():  # died during the run: fail it, replace the worker before the slot's next run
            code = worker.process.exitcode
            self.returncode = code if code else -9
            self.pool.replace(self.slot)
        return self.returncode

    def terminate(self) -> None:
        """Stop the slot's worker, and so its run (SIGTERM, then SIGKILL); the slot's next run gets a new worker."""
        self.pool.replace(self.slot)

    def kill(self) -> None:
        self.terminate()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        return self.returncode


class WarmPool:
    """One warm worker per slot (started on its slot's first run)."""

    def __init__(self, slots: Sequence[Dict[str, str]], target: Optional[str] = None):
        self.slots, self.target = list(slots), target or RUN_TRAIN
        self.workers: Dict[int, _Worker] = {}
        self.restarts = 0

    @staticmethod
    def accepts(run: Run) -> bool:
        """Runs of ``train.py`` (any other command is left to a process of its own)."""
        return len(run.argv) >= 2 and os.path.basename(run.argv[1]) == "train.py"

    def start(self, run: Run, slot: int, log) -> WarmHandle:
        """Send ``run`` to the slot's worker (whose output goes to ``run.log``, already opened as ``log``)."""
        log.flush()
        worker = self.workers.get(slot)
        if worker is None or not worker.alive():
            worker = self.workers[slot] = _Worker(self.slots[slot], self.target)
        worker.conn.send((list(run.argv), str(run.log_path)))
        return WarmHandle(self, slot)

    def replace(self, slot: int) -> None:
        worker = self.workers.pop(slot, None)
        if worker is not None:
            worker.stop(kill=True)
            self.restarts += 1

    def close(self) -> None:
        for slot in list(self.workers):
            self.workers.pop(slot).stop()
