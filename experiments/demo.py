"""Base-to-new generalisation on the toy benchmark, end to end on a CPU: ``python -m tools.demo``.

Runs zero-shot CLIP, CoOp and every trainer that has a ``configs/trainers/<TRAINER>/toy.yaml`` (found at run time,
so trainers added later are included) on a toy dataset (``configs/datasets/toy_*.yaml``; default ToyTinted, on which
prompt learning trades new-class accuracy for base accuracy as on the real benchmarks, see docs/TOY.md) with the tiny
pretrained CLIP (``toyclip``, set by the toy configs), over seeds 1 2 3. The runs go through the sweep runner
(parallel CPU processes; finished runs are reused, interrupted ones resume). Then the base / new / HM table (mean
over seeds) and each method's difference from zero-shot CLIP (``tools.tradeoff``, which marks the trade-off) are
printed and written to ``<output>/results.md``, and the base-versus-new figure to ``<output>/results.png``.

    python -m tools.demo                      # everything, full toy epochs
    python -m tools.demo --quick              # 1 epoch per run (CI); written to output/demo-quick/
    python -m tools.demo --trainers CoOp --seeds 1 --dataset toy_patterns
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from experiments import results, sweep, tradeoff
from experiments.base2new_plot import plot_base2new
from tools.cli import int_at_least
from experiments.protocols import CONFIGS_DIR, REPO_ROOT, SEEDS, ProtocolError, Run, Settings, expand

TOY_CONFIG = "toy"
DEFAULT_DATASET = "toy_tinted"
QUICK_OPTS = ("OPTIM.MAX_EPOCH", "1")
INPUTS_FILE = "demo_inputs.json"
CONFIG_FLAGS = ("--config-file", "--dataset-config-file")


class DemoError(RuntimeError):
    """A demo request that cannot run; the message says what to do."""


def toyclip_weights() -> Path:
    from clip.toyclip import DEFAULT_PATH

    return DEFAULT_PATH


def toy_datasets(configs_dir: Path = CONFIGS_DIR) -> List[str]:
    """Stems of the toy dataset configs, sorted."""
    return sorted(p.stem for p in (configs_dir / "datasets").glob("toy_*.yaml"))


def toy_trainers(configs_dir: Path = CONFIGS_DIR) -> List[str]:
    """ZeroshotCLIP and CoOp (both configured by ``CoOp/toy.yaml``), then every other trainer with a toy.yaml."""
    coop = configs_dir / "trainers" / "CoOp" / f"{TOY_CONFIG}.yaml"
    if not coop.is_file():
        raise DemoError(f"The toy CoOp config is missing: expected {coop}.")
    others = sorted(p.parent.name for p in (configs_dir / "trainers").glob(f"*/{TOY_CONFIG}.yaml")
                    if p.parent.name != "CoOp")
    return ["ZeroshotCLIP", "CoOp", *others]


def render_toy_dataset(stem: str, data_root: Path, configs_dir: Path = CONFIGS_DIR) -> None:
    """Render the toy dataset once before the parallel runs start, so that they do not all render it at once."""
    from datasets.toy_world import TOY_DATASETS, ensure_rendered

    name = (yaml.safe_load((configs_dir / "datasets" / f"{stem}.yaml").read_text()) or {})["DATASET"]["NAME"]
    spec = TOY_DATASETS.get(name)
    if spec is None:
        raise DemoError(f"{stem} ({name}) is not a toy-world dataset; choose one of {', '.join(toy_datasets())}.")
    ensure_rendered(spec, data_root)


def input_fingerprints(runs: Sequence[Run], weights: Path) -> Dict[str, str]:
    """Per trainer, the SHA-256 of what its demo results depend on beyond the resolved config: the toyclip weights and
    the config files its runs read (``--config-file``, ``--dataset-config-file``). The seeds and options of a run are
    not part of it: they are in the run's config, which the sweep checks against the finished run's, so a demo with
    other ``--seeds`` or ``--trainers`` reuses the finished runs it shares with an earlier one."""
    weights_digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "missing"
    per_trainer: Dict[str, List[str]] = {}
    for run in runs:
        argv = list(run.argv)
        parts = per_trainer.setdefault(run.trainer, [weights_digest])
        for i, arg in enumerate(argv[:-1]):
            if arg in CONFIG_FLAGS:
                path = Path(argv[i + 1])
                path = path if path.is_absolute() else REPO_ROOT / path
                parts.append(hashlib.sha256(path.read_bytes()).hexdigest())
    return {t: hashlib.sha256("\n".join(sorted(set(p))).encode()).hexdigest() for t, p in per_trainer.items()}


def check_inputs(output: Path, runs: Sequence[Run], fingerprints: Dict[str, str]) -> None:
    """Refuse to reuse finished runs made from other inputs (another toyclip or toy config); record the inputs.

    The sweep reuses any run whose ``results.json`` exists, so without this check a demo re-run after the weights or
    a toy config changed would silently report the old numbers. Nothing is deleted: the message says what to do.
    """
    path = output / INPUTS_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    finished = {r.trainer for r in runs if r.finished}
    stale = sorted(t for t, h in fingerprints.items() if t in finished and recorded.get(t) != h)
    if stale:
        raise DemoError(f"{output} holds finished {', '.join(stale)} runs made with another toyclip checkpoint or "
                        f"toy config (or by an older version of the demo); they would be reused as they are. Pass "
                        f"--output NEW_FOLDER, or delete {output} (or those trainers' run folders) to run them again.")
    output.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{INPUTS_FILE}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({**recorded, **fingerprints}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def header(dataset: str, trainers: Sequence[str], seeds: Sequence[int], quick: bool) -> str:
    epochs = "1 epoch per run (--quick)" if quick else f"the epochs of configs/trainers/*/{TOY_CONFIG}.yaml"
    return (f"# Toy base-to-new demo\n\nDataset `{dataset}`, backbone `toyclip`, methods {', '.join(trainers)}, "
            f"seeds {' '.join(map(str, seeds))}, {epochs}. Generated by `python -m tools.demo` on "
            f"{time.strftime('%Y-%m-%d %H:%M')}. Toy-world numbers check that the pipeline works; they are not "
            f"comparable with published results.\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", help=f"toy dataset config stem (default: {DEFAULT_DATASET})")
    p.add_argument("--trainers", nargs="+", help="default: ZeroshotCLIP, CoOp and every trainer with a toy.yaml")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="default: 1 2 3")
    p.add_argument("--quick", action="store_true", help=f"{' '.join(QUICK_OPTS)} (for CI)")
    p.add_argument("--jobs", type=int_at_least(1), default=os.cpu_count() or 1,
                   help="parallel CPU runs (default: CPU count)")
    p.add_argument("--root", help="dataset root where the toy world is rendered (default: $DATA, else data/)")
    p.add_argument("--output", type=Path, help="default: output/demo (output/demo-quick with --quick)")
    p.add_argument("--runner", choices=("warm", "process"), default="warm",
                   help="warm workers (default) or a process per run (tools.sweep --runner)")
    args = p.parse_args(argv)
    try:
        datasets = toy_datasets()
        if not datasets:
            raise DemoError(f"No toy dataset configs: expected {CONFIGS_DIR / 'datasets'}/toy_*.yaml.")
        dataset = args.dataset or DEFAULT_DATASET
        if dataset not in datasets:
            raise DemoError(f"Unknown toy dataset {dataset!r}; choose one of {', '.join(datasets)}.")
        trainers = args.trainers or toy_trainers()
        data_root = Path(args.root or os.environ.get("DATA") or REPO_ROOT / "data").expanduser().resolve()
        output = (args.output or REPO_ROOT / "output" / ("demo-quick" if args.quick else "demo")).expanduser().resolve()
        settings = Settings(data_root=data_root, output_root=output, opts=QUICK_OPTS if args.quick else ())
        runs = expand("base2new", trainers, [dataset], args.seeds, settings, config=TOY_CONFIG)
        print(f"Toy base-to-new demo: {', '.join(trainers)} on {dataset}, seeds {' '.join(map(str, args.seeds))}; "
              f"{len(runs)} runs, {args.jobs} in parallel, outputs in {output}")
        check_inputs(output, runs, input_fingerprints(runs, toyclip_weights()))
        render_toy_dataset(dataset, data_root)
        status = sweep.execute(runs, output, jobs=args.jobs, runner=args.runner)
        summary = results.Summary([rec for rec in (results.read_run(r.output_dir) for r in runs if r.finished)
                                   if rec is not None])
    except (DemoError, ProtocolError, sweep.SweepError, results.ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return sweep.report_stop(e)
    if not summary.rows:
        print("No finished runs to tabulate.", file=sys.stderr)
        return 1
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print("\n" + results.report(summary, "terminal"))
    print(tradeoff.report(summary, "terminal"))
    table_file = output / "results.md"
    table = results.report(summary, "markdown") + "\n" + tradeoff.report(summary, "markdown")
    table_file.write_text(header(dataset, trainers, args.seeds, args.quick) + "\n" + table)
    print(f"Table written to {table_file}")
    try:
        print(f"Figure written to {plot_base2new(summary, output / 'results.png')}")
    except results.ResultsError as e:
        print(f"warning: no figure: {e}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
