"""Crash injection for the run-integrity tests: stop a ``train.py`` run at a save boundary, as a kill would.

Every change a run makes on disk goes through ``os.replace`` (atomic writes), ``append_line`` (metrics.jsonl) or
``os.remove`` (pruning). A kill between two such changes leaves the disk as it was after the first, plus possibly
the second's temporary file or a partial metrics line. :class:`Injector` labels each change
(``phase|kind|path|n``; the phase is the epoch being finished, ``start`` or ``final``) and raises
:class:`SimulatedKill` right after the labelled one; ``leave="tmp"`` also leaves a temporary file behind and
``leave="partial"`` a half-written metrics line. Evaluations are boundaries too (killed when they start).

``python -m tests.crash_harness LABEL ARGV...`` runs ``train.main(ARGV)`` and SIGKILLs itself at ``LABEL``.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import sys
from typing import List, Optional

import torch

import engine
import engine.run_files
import engine.trainer
from engine.trainer import SimpleTrainer


class SimulatedKill(BaseException):
    """Raised at the chosen boundary; a BaseException, so no ``except Exception`` in the code under test stops it."""


class Injector:
    """Patch the write functions (``with Injector(out, kill_at=label):``) and record the boundary labels."""

    def __init__(self, output_dir: str, kill_at: Optional[str] = None, leave: str = "", hard: bool = False):
        self.output_dir = os.path.abspath(output_dir)
        self.kill_at, self.leave, self.hard = kill_at, leave, hard
        self.labels: List[str] = []
        self._counts = collections.Counter()
        self.trainer = None
        self._final = False

    # ---- labels ----------------------------------------------------------------------------------------------
    def _phase(self) -> str:
        t = self.trainer
        if self._final:
            return "final"
        if t is None or not hasattr(t, "time_start"):
            return "start"
        return f"epoch{t.epoch + 1}"

    def _label(self, kind: str, path: str) -> Optional[str]:
        """The label the next change of this kind to ``path`` gets (``None`` for files outside the run)."""
        rel = os.path.relpath(os.path.abspath(path), self.output_dir)
        if rel.startswith(".."):
            return None  # not a file of this run (e.g. a dataset cache)
        key = f"{self._phase()}|{kind}|{rel}"
        return f"{key}|{self._counts[key] + 1}"

    def _point(self, kind: str, path: str, on_kill=None) -> None:
        label = self._label(kind, path)
        if label is None:
            return
        self._counts[label.rsplit("|", 1)[0]] += 1
        self.labels.append(label)
        if label == self.kill_at:
            if on_kill is not None:
                on_kill()
            if self.hard:
                os.kill(os.getpid(), signal.SIGKILL)
            raise SimulatedKill(label)

    # ---- patches -----------------------------------------------------------------------------------------------
    def __enter__(self) -> "Injector":
        self._saved = (os.replace, os.remove, engine.run_files.append_line, engine.trainer.append_line,
                       SimpleTrainer.test, SimpleTrainer.after_train, engine.build_trainer)
        real_replace, real_remove, real_append = os.replace, os.remove, engine.run_files.append_line
        real_test, real_after_train, real_build = SimpleTrainer.test, SimpleTrainer.after_train, engine.build_trainer
        inj = self

        def replace(src, dst, *a, **k):
            real_replace(src, dst, *a, **k)
            leftover = os.path.join(os.path.dirname(str(dst)), f".tmp-{os.path.basename(str(dst))}.killed00.part")
            left = (lambda: open(leftover, "wb").write(b"x" * 10)) if inj.leave == "tmp" else None
            inj._point("write", str(dst), left)

        def remove(path, *a, **k):
            real_remove(path, *a, **k)
            inj._point("remove", str(path))

        def append_line(path, record):
            if inj.leave == "partial" and inj._label("append", path) == inj.kill_at:  # killed while appending
                with open(path, "a") as f:
                    f.write(json.dumps(record)[:7])
                inj._point("append", path)
            real_append(path, record)
            inj._point("append", path)

        def test(trainer, split=None, record=True):
            inj._point(f"eval-{split or 'test'}", os.path.join(inj.output_dir, "eval"))
            return real_test(trainer, split, record)

        def after_train(trainer):
            inj._final = True
            return real_after_train(trainer)

        def build_trainer(cfg):
            inj.trainer = real_build(cfg)
            return inj.trainer

        os.replace, os.remove = replace, remove
        engine.run_files.append_line = engine.trainer.append_line = append_line
        SimpleTrainer.test, SimpleTrainer.after_train, engine.build_trainer = test, after_train, build_trainer
        return self

    def __exit__(self, *exc) -> None:
        (os.replace, os.remove, engine.run_files.append_line, engine.trainer.append_line, SimpleTrainer.test,
         SimpleTrainer.after_train, engine.build_trainer) = self._saved


# ---- the final state of a run ------------------------------------------------------------------------------------
def _plain(x):
    """Checkpoint contents as comparable values (tensors -> (dtype, shape, bytes))."""
    if isinstance(x, torch.Tensor):
        return ("tensor", str(x.dtype), tuple(x.shape), x.detach().cpu().contiguous().numpy().tobytes())
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def final_state(output_dir: str) -> dict:
    """Everything a run's numbers depend on: every module file (state, optimiser, scheduler, RNG, best record),
    every metrics line without its wall time, results.json's metrics, and the list of checkpoint files."""
    state = {"files": [], "checkpoints": {}}
    for folder, dirs, files in sorted(os.walk(output_dir)):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), output_dir)
            if "model" in name:
                state["files"].append(rel)
                state["checkpoints"][rel] = _plain(torch.load(os.path.join(output_dir, rel), weights_only=True))
            elif name.startswith(".tmp-"):
                state["files"].append(rel)
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        state["metrics"] = [{k: v for k, v in json.loads(ln).items() if k != "time_s"} for ln in f]
    with open(os.path.join(output_dir, "results.json")) as f:
        results = json.load(f)
    state["results"] = results["metrics"]
    state["config_changes"] = results["config_changes"]
    return state


def differences(a: dict, b: dict, path: str = "") -> List[str]:
    """Where two final states differ (empty when identical)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in one" for k in sorted(set(a) ^ set(b), key=str)]
        for k in a:
            if k in b:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:80]} != {str(b)[:80]}"]


if __name__ == "__main__":
    import tests.helpers  # noqa: F401 - registers the generated TestColors dataset
    import train

    label, argv = sys.argv[1], sys.argv[2:]
    with Injector(argv[argv.index("--output-dir") + 1], kill_at=label, hard=True):
        sys.exit(train.main(argv))
