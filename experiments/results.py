"""Paper-style result tables: ``python -m tools.results OUTPUT_DIR``.

Reads every run directory under OUTPUT_DIR: its ``results.json``, or, for runs of the original CoOp code, the last
``* accuracy: X%`` line of ``log.txt`` after the ``Finish training`` (older Dassl: ``Finished training``) or
``=> result`` marker, as CoOp's ``parse_test_res.py`` does. The protocol, dataset, trainer, config, shots and seed
come from the output layout of :mod:`experiments.protocols` (which is CoCoOp's and MaPLe's); base versus new comes from
the layout and from ``subsample_classes`` in ``results.json``.

Accuracies are averaged over seeds (mean ± population std, as ``parse_test_res.py``; the number of seeds is shown
and missing seeds are warned about). Base-to-new tables give per dataset the mean base and new accuracy and
HM = 2·B·N / (B + N) of those means; the Average row is the mean over datasets of base and of new, and its HM is the
HM of the two averages, not the average of the per-dataset HMs (MaPLe README / CoCoOp Table 1). Few-shot averages
are over datasets per shot count; cross-dataset and domain-generalisation averages are over the targets.

``--compare reported`` adds the published number and the difference (measured - published) under each row, from
``experiments/reported_numbers.json``, with the paper and the provenance of each number in footnotes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tabulate import tabulate

from engine.run_results import RESULTS_FILE
from experiments.protocols import (BASE2NEW_DATASETS, CONFIGS_DIR, DG_TARGETS, METHODS, PROTOCOLS, XD_SOURCE,
                                   XD_TARGETS, config_family, dataset_name, trainer_is_seed_free)

REPORTED_FILE = Path(__file__).resolve().parent / "reported_numbers.json"
LOG_MARKERS = ("Finish training", "Finished training", "=> result")
ACCURACY_LINE = re.compile(r"\* accuracy: ([-+\d.eE]+)%")
AVERAGE = "average"
FORMATS = {"terminal": "simple", "markdown": "github", "latex": "latex_booktabs"}
PROVENANCE_RANK = ("verified-readme", "readme-table", "from-memory-recomputed", "read-from-figure-approx")
ORDER = [dataset_name(s) for s in (*BASE2NEW_DATASETS, *DG_TARGETS)]


class ResultsError(ValueError):
    """Bad input to the results tools; the message says what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Reading run directories
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """One run's test accuracy. ``role`` is base, new or acc; ``dataset`` is the Dassl DATASET.NAME."""

    protocol: str
    role: str
    trainer: str
    config: str
    dataset: str
    shots: Optional[int]
    seed: Optional[int]
    accuracy: float
    path: Path
    backbone: Optional[str] = None
    nan_metrics: Tuple[str, ...] = ()  # metrics of results.json that are NaN or infinite
    settings: Optional[Tuple[Tuple[str, str], ...]] = None  # result-relevant config but the seed; None: not recorded
    config_changes: Tuple[str, ...] = ()  # changes accepted on resume (--allow-config-change), as "KEY: a -> b"


def run_settings(config: dict) -> Tuple[Tuple[str, str], ...]:
    """A run's identity without its seed: its result-relevant config keys (``engine.config_fingerprint``) but
    ``SEED``, as sorted ``(key, JSON value)`` pairs."""
    from engine.config_fingerprint import relevant_config

    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in relevant_config(config).items() if k != "SEED"))


def changes_text(config_changes) -> Tuple[str, ...]:
    """``results.json``'s ``config_changes`` as ``"KEY: old -> new (after epoch E)"`` lines."""
    out = []
    for entry in config_changes if isinstance(config_changes, list) else []:
        if isinstance(entry, dict):
            for change in entry.get("changes") or []:
                key, old, new = (list(change) + [None, None, None])[:3]
                out.append(f"{key}: {old!r} -> {new!r} (after epoch {entry.get('resumed_after_epoch')})")
    return tuple(out)


def log_accuracy(log: Path) -> Optional[float]:
    """The last ``* accuracy: X%`` after the first end-of-training / result marker, or None."""
    armed, value = False, None
    with open(log, errors="replace") as f:
        for line in f:
            if not armed:
                armed = any(m in line for m in LOG_MARKERS)
                continue
            match = ACCURACY_LINE.search(line)
            if match:
                value = float(match.group(1))
    return value


def _int_after(prefix: str, text: str, suffix: str = "") -> Optional[int]:
    match = re.fullmatch(re.escape(prefix) + r"(-?\d+)" + re.escape(suffix), text)
    return int(match.group(1)) if match else None


def parse_layout(parts: Sequence[str]) -> Optional[dict]:
    """Protocol fields from the trailing path components of a run directory (see experiments.protocols)."""
    candidates = []
    if len(parts) >= 7 and parts[-7] == "base2new" and parts[-6] in ("train_base", "test_base", "test_new"):
        _, phase, stem, shots, trainer, config, seed = parts[-7:]
        candidates.append(dict(protocol="base2new", role="new" if phase == "test_new" else "base", stem=stem,
                               shots=_int_after("shots_", shots), trainer=trainer, config=config,
                               seed=_int_after("seed", seed)))
    if len(parts) >= 7 and parts[-7] in ("xd", "dg") and parts[-6] in ("train", "test"):
        protocol, _, stem, shots, trainer, config, seed = parts[-7:]
        candidates.append(dict(protocol=protocol, role="acc", stem=stem, shots=_int_after("shots_", shots),
                               trainer=trainer, config=config, seed=_int_after("seed", seed)))
    if len(parts) >= 5 and parts[-5] == "fewshot":
        _, stem, trainer, config_shots, seed = parts[-5:]
        match = re.fullmatch(r"(.+)_(\d+)shots", config_shots)
        if match:
            candidates.append(dict(protocol="fewshot", role="acc", stem=stem, shots=int(match.group(2)),
                                   trainer=trainer, config=match.group(1), seed=_int_after("seed", seed)))
    if len(parts) >= 5 and parts[-5] == "zeroshot":
        _, stem, trainer, config, seed = parts[-5:]
        candidates.append(dict(protocol="zeroshot", role="acc", stem=stem, shots=None, trainer=trainer,
                               config=config, seed=_int_after("seed", seed)))
    candidates = [c for c in candidates if c["seed"] is not None]
    return candidates[0] if candidates else None


def read_run(run_dir: Path, configs_dir: Path = CONFIGS_DIR) -> Optional[Record]:
    """The record of one run directory, or None when it has no usable result (with a warning)."""
    layout = parse_layout(run_dir.parts) or {}
    results_file, log = run_dir / RESULTS_FILE, run_dir / "log.txt"
    if results_file.is_file():
        try:
            res = json.loads(results_file.read_text())
            accuracy = float(res["metrics"]["accuracy"])
        except (ValueError, KeyError, TypeError) as e:
            warnings.warn(f"{results_file}: unreadable ({e}); skipped.")
            return None
        subsample = res.get("subsample_classes")
        role = subsample if subsample in ("base", "new") else layout.get("role", "acc")
        protocol = layout.get("protocol") or ("base2new" if role in ("base", "new") else "other")
        if protocol != "base2new" and role in ("base", "new"):
            role = "acc"
        stem = layout.get("stem")
        seed = res.get("seed") if isinstance(res.get("seed"), int) and res.get("seed") >= 0 else layout.get("seed")
        return Record(protocol=protocol, role=role, trainer=str(res.get("trainer") or layout.get("trainer", "?")),
                      config=layout.get("config", "-"),
                      dataset=str(res.get("dataset") or (dataset_name(stem, configs_dir) if stem else "?")),
                      shots=layout["shots"] if "shots" in layout else res.get("num_shots"), seed=seed,
                      accuracy=accuracy, path=run_dir, backbone=res.get("backbone"),
                      nan_metrics=non_finite(res["metrics"]),
                      settings=run_settings(res["config"]) if isinstance(res.get("config"), dict) else None,
                      config_changes=changes_text(res.get("config_changes")))
    if log.is_file():
        if not layout:
            warnings.warn(f"{log}: no results.json and the directory layout is not one of experiments.protocols'; "
                          f"skipped.")
            return None
        accuracy = log_accuracy(log)
        if accuracy is None:
            warnings.warn(f"{log}: no '* accuracy: X%' line after a {' / '.join(LOG_MARKERS)} marker; skipped "
                          f"(unfinished run?).")
            return None
        return Record(protocol=layout["protocol"], role=layout["role"], trainer=layout["trainer"],
                      config=layout["config"], dataset=dataset_name(layout["stem"], configs_dir),
                      shots=layout["shots"], seed=layout["seed"], accuracy=accuracy, path=run_dir)
    return None


def non_finite(metrics: dict) -> Tuple[str, ...]:
    """Names of the numeric metrics that are NaN or infinite (a diverged run writes them as NaN)."""
    return tuple(k for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v))


def nan_warning(records: Sequence[Record]) -> Optional[str]:
    """One warning naming every run with NaN or infinite metrics, or None."""
    bad = [r for r in records if r.nan_metrics]
    if not bad:
        return None
    listed = "; ".join(f"{r.path} ({', '.join(r.nan_metrics)})" for r in bad)
    return (f"{len(bad)} run(s) report NaN or infinite metrics, so every mean that includes them is nan too "
            f"(diverged training? see each run's log.txt, fix the cause, delete the run directory and run it "
            f"again): {listed}")


def collect(root: Path, configs_dir: Path = CONFIGS_DIR) -> List[Record]:
    """Records of every run directory under ``root`` (directories holding results.json or log.txt)."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"No output directory {root}. Pass the --output-dir root of your runs "
                           f"(default output/), e.g. python -m tools.results output")
    run_dirs = sorted({p.parent for name in (RESULTS_FILE, "log.txt") for p in root.rglob(name)})
    return [r for r in (read_run(d, configs_dir) for d in run_dirs) if r is not None]


# ---------------------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """A mean over seeds (``std`` is None for derived numbers: HM and averages over datasets)."""

    mean: float
    std: Optional[float] = None
    seeds: Tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return len(self.seeds)


def _seed_free(records: Iterable[Record]) -> bool:
    """A single result of a run that cannot depend on the seed (experiments/seed_free.py)."""
    records = list(records)
    return len(records) == 1 and trainer_is_seed_free(records[0].trainer, records[0].backbone)


def over_seeds(values: Dict[int, float]) -> Cell:
    """Mean and population std (ddof=0, as CoOp's parse_test_res.py) of per-seed accuracies."""
    arr = np.array([values[s] for s in sorted(values)], dtype=float)
    return Cell(float(arr.mean()), float(arr.std()), tuple(sorted(values)))


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2·B·N / (B + N) (0 when both are 0)."""
    return 2 * base * new / (base + new) if base + new else 0.0


@dataclass
class Row:
    """One table row: a method on a dataset (or the ``average`` pseudo-dataset)."""

    protocol: str
    trainer: str
    family: str
    dataset: str
    shots: Optional[int]
    cells: Dict[str, Cell]
    configs: Tuple[str, ...] = ()
    backbone: Optional[str] = None
    n_datasets: int = 0  # for average rows
    seed_free: bool = False  # a zero-shot run executed once (experiments/seed_free.py)
    label: str = ""
    reported: Dict[str, dict] = field(default_factory=dict)
    variant: tuple = (None, None, ())  # (backbone, distinguishing settings, config changes): see Summary

    @property
    def method(self) -> tuple:
        base = (self.trainer, self.family) if self.protocol == "fewshot" else (self.trainer, self.family, self.shots)
        return (*base, self.variant)

    @property
    def config_changes(self) -> Tuple[str, ...]:
        return self.variant[2]

    @property
    def is_average(self) -> bool:
        return self.dataset == AVERAGE


CHANGED_MARK = "[config changed on resume]"


def _differences(variants: Sequence[tuple]) -> List[str]:
    """What distinguishes runs of these variants: backbone, config keys, recorded config, config changes."""
    out = ["backbone"] if len({v[0] for v in variants}) > 1 else []
    recorded = [dict(v[1]) for v in variants if v[1] is not None]
    if len(recorded) < len(variants) and recorded:
        out.append("recorded config (some results.json hold none)")
    keys = sorted({k for d in recorded for k in d if len({e.get(k) for e in recorded}) > 1})
    out += [k for k in keys if k != "MODEL.BACKBONE.NAME" or "backbone" not in out]
    if len({v[2] for v in variants}) > 1:
        out.append("config changes on resume")
    return out


def _setting_text(variant: tuple, variants: set) -> List[str]:
    """``KEY=value`` for each config key (but the backbone) whose value differs between ``variants``."""
    if len(variants) < 2:
        return []
    if variant[1] is None:
        return ["config not recorded"] if any(v[1] is not None for v in variants) else []
    recorded = [dict(v[1]) for v in variants if v[1] is not None]
    mine = dict(variant[1])
    return [f"{k}={json.loads(mine[k]) if mine.get(k) is not None else '-'}" for k in sorted(mine)
            if k != "MODEL.BACKBONE.NAME" and len({d.get(k) for d in recorded}) > 1]


def _dataset_order(name: str) -> tuple:
    return (0, "") if name == AVERAGE else ((1, ORDER.index(name)) if name in ORDER else (2, name))


def _mean_cell(cells: Sequence[Cell]) -> Cell:
    return Cell(float(np.mean([c.mean for c in cells])))


def _nominal(rec: Record) -> tuple:
    """Where a run sits in the tables: protocol, trainer, config family, dataset, shots, role."""
    return rec.protocol, rec.trainer, config_family(rec.config), rec.dataset, rec.shots, rec.role


def distinguishing_keys(records: Sequence[Record]) -> List[str]:
    """Config keys whose values differ between runs at the same place in the tables (the seed aside)."""
    by_place: Dict[tuple, List[dict]] = {}
    for rec in records:
        if rec.settings is not None:
            by_place.setdefault(_nominal(rec), []).append(dict(rec.settings))
    keys = set()
    for settings in by_place.values():
        for key in set().union(*settings):
            if len({d.get(key) for d in settings}) > 1:
                keys.add(key)
    return sorted(keys)


class Summary:
    """Rows of every protocol, and the warnings found while building them.

    Runs are averaged as seeds only when they are the same run but for the seed: same place in the tables, same
    backbone, same result-relevant config (``engine.config_fingerprint``; the keys of :func:`distinguishing_keys`)
    and the same config changes on resume. Runs that differ in anything else get rows of their own, labelled with
    what distinguishes them, and a warning names the keys."""

    def __init__(self, records: Sequence[Record]):
        self.warnings: List[str] = [w for w in (nan_warning(records),) if w]
        self.rows: Dict[str, List[Row]] = {}
        self.distinguishing = distinguishing_keys(records)
        groups: Dict[tuple, Dict[int, Record]] = {}
        for rec in records:
            key = (*_nominal(rec), self._variant(rec))
            seeds = groups.setdefault(key, {})
            if rec.seed in seeds:
                self.warnings.append(f"two results for seed {rec.seed} of {key[:5]}: {seeds[rec.seed].path} and "
                                     f"{rec.path}; using the second.")
            seeds[rec.seed] = rec
        self._warn_split(groups)
        changed = [r for r in records if r.config_changes]
        if changed:
            self.warnings.append(f"{len(changed)} run(s) were resumed with another config (--allow-config-change) "
                                 f"and are marked [config changed on resume]: " + "; ".join(
                                     f"{r.path} ({', '.join(r.config_changes)})" for r in changed))
        self._expected = {p: sorted({r.seed for r in records if r.protocol == p and r.seed is not None})
                          for p in {r.protocol for r in records}}
        for key, by_seed in sorted(groups.items(), key=lambda kv: str(kv[0])):
            self._check_seeds(key, by_seed)
        self.rows = {p: self._build(p, groups) for p in (*PROTOCOLS, "other")}
        self.rows = {p: rows for p, rows in self.rows.items() if rows}
        for rows in self.rows.values():
            self._label(rows)

    def _variant(self, rec: Record) -> tuple:
        settings = None if rec.settings is None else tuple((k, dict(rec.settings).get(k)) for k in self.distinguishing)
        return rec.backbone, settings, rec.config_changes

    def _warn_split(self, groups: Dict[tuple, Dict[int, Record]]) -> None:
        """One warning per place in the tables whose runs differ in more than the seed."""
        by_place: Dict[tuple, List[tuple]] = {}
        for key in groups:
            by_place.setdefault(key[:6], []).append(key[6])
        self._variants_at = by_place
        for (protocol, trainer, family, dataset, shots, role), variants in sorted(by_place.items(), key=str):
            if len(variants) > 1:
                self.warnings.append(f"{protocol} {trainer} ({family}, {shots} shots) {dataset} {role}: runs differ "
                                     f"in {', '.join(_differences(variants))}; they are separate rows, not averaged "
                                     f"as seeds.")

    def _check_seeds(self, key: tuple, by_seed: Dict[int, Record]) -> None:
        if _seed_free(by_seed.values()):
            return  # run once by design (experiments/seed_free.py)
        missing = [s for s in self._expected[key[0]] if s not in by_seed]
        if missing:
            protocol, trainer, family, dataset, shots, role, variant = key
            variants = set(self._variants_at[key[:6]])
            which = [str(variant[0] or "backbone not recorded")] if len({v[0] for v in variants}) > 1 else []
            which += _setting_text(variant, variants) + ([CHANGED_MARK] if variant[2] else [])
            self.warnings.append(
                f"{protocol} {trainer} ({family}, {shots} shots{''.join(f', {w}' for w in which)}) {dataset} {role}: "
                f"missing seed(s) "
                f"{', '.join(map(str, missing))} (have {', '.join(str(s) for s in sorted(by_seed))}).")

    def _build(self, protocol: str, groups: Dict[tuple, Dict[int, Record]]) -> List[Row]:
        rows: Dict[tuple, Row] = {}
        for (p, trainer, family, dataset, shots, role, variant), by_seed in groups.items():
            if p != protocol and not (protocol == "dg" and p == "xd" and dataset == dataset_name(XD_SOURCE)):
                continue
            row = rows.setdefault((trainer, family, dataset, shots, variant),
                                  Row(protocol, trainer, family, dataset, shots, {}, backbone=variant[0],
                                      variant=variant))
            row.cells[role] = over_seeds({s: r.accuracy for s, r in by_seed.items()})
            row.configs = tuple(sorted(set(row.configs) | {r.config for r in by_seed.values()}))
            row.seed_free = _seed_free(by_seed.values())
        if protocol == "dg":  # the source column comes from the xd source runs of the methods evaluated on dg
            dg_methods = {(r.method, r.shots) for r in rows.values() if r.dataset != dataset_name(XD_SOURCE)}
            rows = {k: r for k, r in rows.items() if (r.method, r.shots) in dg_methods}
        out = sorted(rows.values(), key=lambda r: (_dataset_order(r.dataset), str(r.method)))
        if protocol == "base2new":
            for row in out:
                if "base" in row.cells and "new" in row.cells:
                    b, n = row.cells["base"], row.cells["new"]
                    both = tuple(sorted(set(b.seeds) & set(n.seeds)))
                    row.cells["hm"] = Cell(harmonic_mean(b.mean, n.mean), None, both)
                else:
                    self.warnings.append(f"base2new {row.trainer} {row.dataset}: only "
                                         f"{'base' if 'base' in row.cells else 'new'} results; no HM.")
        return self._averages(protocol, out) + out

    def _averages(self, protocol: str, rows: List[Row]) -> List[Row]:
        """Average rows per method (per shot count for few-shot)."""
        if protocol in ("zeroshot", "other"):
            return []
        excluded = {dataset_name(XD_SOURCE)} if protocol in ("xd", "dg") else set()
        if protocol in ("base2new", "fewshot") and len({r.dataset for r in rows}) < 2:
            return []  # the average of one dataset would repeat its row
        by_method: Dict[tuple, List[Row]] = {}
        for row in rows:
            if row.dataset not in excluded:
                by_method.setdefault((row.trainer, row.family, row.shots, row.variant), []).append(row)
        averages = []
        all_datasets = {r.dataset for r in rows if r.dataset not in excluded}
        for (trainer, family, shots, variant), group in by_method.items():
            if protocol == "base2new":
                complete = [r for r in group if "hm" in r.cells]
                if not complete:
                    continue
                base = _mean_cell([r.cells["base"] for r in complete])
                new = _mean_cell([r.cells["new"] for r in complete])
                cells = {"base": base, "new": new, "hm": Cell(harmonic_mean(base.mean, new.mean))}
            else:
                complete = group
                cells = {"acc": _mean_cell([r.cells["acc"] for r in group])}
            if len(complete) < len(all_datasets):
                self.warnings.append(f"{protocol} {trainer} ({family}, {shots} shots): the average covers "
                                     f"{len(complete)} of {len(all_datasets)} datasets.")
            averages.append(Row(protocol, trainer, family, AVERAGE, shots, cells,
                                tuple(sorted({c for r in complete for c in r.configs})),
                                group[0].backbone, n_datasets=len(complete), variant=variant))
        return sorted(averages, key=lambda r: str(r.method))

    @staticmethod
    def _label(rows: List[Row]) -> None:
        """Method labels: the trainer name, plus the config family / shots / backbone / differing settings where a
        trainer has several, and ``[config changed on resume]`` on runs resumed with another config."""
        methods = {r.method for r in rows}
        for row in rows:
            same_trainer = {m for m in methods if m[0] == row.trainer}
            families = {m[1] for m in same_trainer}
            shots = {m[2] for m in same_trainer} if row.protocol != "fewshot" else set()
            variants = {m[-1] for m in same_trainer}
            extra = ([row.family] if len(families) > 1 else []) + ([f"{row.shots} shots"] if len(shots) > 1 else [])
            if len({v[0] for v in variants}) > 1:
                extra.append(str(row.backbone or "backbone not recorded"))
            extra += _setting_text(row.variant, variants)
            row.label = (row.trainer + (f" ({', '.join(extra)})" if extra else "")
                         + (f" {CHANGED_MARK}" if row.config_changes else ""))

    def expected_seeds(self, protocol: str) -> List[int]:
        return self._expected.get(protocol, [])


# ---------------------------------------------------------------------------------------------------------------
# Published numbers
# ---------------------------------------------------------------------------------------------------------------

class Reported:
    """Published numbers (``experiments/reported_numbers.json``) joined to measured rows."""

    SETTINGS = {"base2new": ("base2new",), "fewshot": ("fewshot",), "xd": ("xd",), "dg": ("dg",),
                "zeroshot": ("fewshot", "xd", "dg")}
    # A published average is over the whole benchmark; a measured one is comparable only when it covers as much.
    AVERAGED_OVER = {"base2new": len(BASE2NEW_DATASETS), "fewshot": len(BASE2NEW_DATASETS), "xd": len(XD_TARGETS),
                     "dg": len(DG_TARGETS)}

    def __init__(self, path: Path = REPORTED_FILE):
        if not path.is_file():
            raise ResultsError(f"Published numbers not found: expected {path} (it ships with the repository).")
        data = json.loads(path.read_text())
        self.provenance_note = data.get("provenance", "")
        self.entries = data["entries"]

    def find(self, row: Row, metric: str) -> Optional[dict]:
        names = METHODS[row.trainer].reported_names(row.configs) if row.trainer in METHODS else (row.trainer,)
        settings = self.SETTINGS.get(row.protocol, ())
        dataset = AVERAGE if row.is_average else row.dataset
        if row.is_average and row.n_datasets != self.AVERAGED_OVER.get(row.protocol):
            return None
        found = []
        for e in self.entries:
            if (e["method"] in names and e["setting"] in settings and e["dataset"] == dataset
                    and e["metric"] == metric
                    and (row.backbone is None or e.get("backbone") in (None, row.backbone))):
                if row.protocol == "fewshot" and e["shots"] != row.shots:
                    continue
                if row.protocol == "zeroshot" and e["shots"] not in (0, None):
                    continue
                found.append(e)
        found.sort(key=lambda e: (e.get("backbone") != row.backbone,  # the same backbone before an unstated one
                                  PROVENANCE_RANK.index(e["provenance"]) if e["provenance"] in PROVENANCE_RANK else 99))
        return found[0] if found else None

    def attach(self, summary: Summary) -> None:
        for rows in summary.rows.values():
            for row in rows:
                row.reported = {m: e for m in row.cells if (e := self.find(row, m)) is not None}


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Table:
    title: str
    headers: List[str]
    rows: List[List[str]]
    footnotes: List[str] = field(default_factory=list)


def fmt(cell: Optional[Cell]) -> str:
    if cell is None:
        return "-"
    return f"{cell.mean:.2f} ± {cell.std:.2f}" if cell.std is not None and cell.n > 1 else f"{cell.mean:.2f}"


def _backbone_text(row: Row) -> str:
    return str(row.backbone) if row.backbone else "-"


def _seeds_text(row: Row, expected: Sequence[int]) -> str:
    if row.is_average:
        return f"{row.n_datasets} datasets"
    ns = [c.n for k, c in row.cells.items() if k != "hm"]
    have = min(ns) if ns else 0
    if row.seed_free and have == 1:
        return "1 (seed-free)"
    return f"{have}/{len(expected)}" if have < len(expected) else str(have)


class _Footnotes:
    def __init__(self):
        self.keys: List[str] = []

    def mark(self, entries: Iterable[dict]) -> str:
        marks = []
        for e in entries:
            key = f"{e['paper']}; provenance: {e['provenance']}"
            if key not in self.keys:
                self.keys.append(key)
            marks.append(f"[{self.keys.index(key) + 1}]")
        return "".join(dict.fromkeys(marks))

    def lines(self) -> List[str]:
        return [f"[{i + 1}] {k}" for i, k in enumerate(self.keys)]


def _compare_rows(lead: List[str], cells: Sequence[Tuple[Row, str]], notes: _Footnotes, width: int) -> List[List[str]]:
    """The 'paper' and 'Δ' rows under a measured row: ``cells`` pairs each value column with (row, metric)."""
    entries = [row.reported.get(metric) for row, metric in cells]
    if not any(entries):
        return []
    paper = [f"{e['value']:.2f}" if e else "-" for e in entries]
    delta = [f"{row.cells[m].mean - e['value']:+.2f}" if e and m in row.cells else "-"
             for (row, m), e in zip(cells, entries)]
    mark = notes.mark(e for e in entries if e)
    pad = [""] * (width - len(lead) - len(cells))
    return [[*lead[:-1], f"{lead[-1]} paper {mark}", *paper, *pad], [*lead[:-1], f"{lead[-1]} Δ", *delta, *pad]]


def _long_table(summary: Summary, protocol: str, metrics: Sequence[str], headers: Sequence[str], title: str,
                compare: bool) -> Table:
    rows = summary.rows[protocol]
    notes = _Footnotes()
    out = []
    with_shots = protocol == "other"
    for row in rows:
        name = "Average" if row.is_average else row.dataset
        lead = [name, row.label] + ([str(row.shots)] if with_shots else [])
        seeds = _seeds_text(row, summary.expected_seeds(protocol))
        out.append([*lead, *(fmt(row.cells.get(m)) for m in metrics), seeds, _backbone_text(row)])
        if compare:
            out += _compare_rows(["", " " * len(row.label)] + ([""] if with_shots else []),
                                 [(row, m) for m in metrics], notes, len(out[-1]))
    heads = ["Dataset", "Method"] + (["Shots"] if with_shots else []) + list(headers) + ["Seeds", "Backbone"]
    return Table(title, heads, out, notes.lines())


def _wide_table(summary: Summary, protocol: str, compare: bool) -> Table:
    """Few-shot (columns: shots, one row per dataset and method) or xd/dg (columns: datasets, one row per method)."""
    rows = summary.rows[protocol]
    notes = _Footnotes()
    out = []
    if protocol == "fewshot":
        shots = sorted({r.shots for r in rows})
        lines = sorted({(r.dataset, r.method, r.label) for r in rows}, key=lambda t: (_dataset_order(t[0]), str(t[1])))
        for dataset, method, label in lines:
            members = [next((r for r in rows if r.dataset == dataset and r.method == method and r.shots == k), None)
                       for k in shots]
            lead = ["Average" if dataset == AVERAGE else dataset, label]
            present = [m for m in members if m]
            have, expected = min(m.cells["acc"].n for m in present), len(summary.expected_seeds(protocol))
            seeds = "" if dataset == AVERAGE else (f"{have}/{expected}" if have < expected else str(have))
            out.append([*lead, *(fmt(m.cells["acc"]) if m else "-" for m in members), seeds,
                        _backbone_text(present[0])])
            if compare:
                cells = [(m or Row(protocol, "", "", dataset, k, {}), "acc") for m, k in zip(members, shots)]
                out += _compare_rows(["", " " * len(label)], cells, notes, len(out[-1]))
        heads = ["Dataset", "Method", *(f"{k} shots" for k in shots), "Seeds", "Backbone"]
        title = "Few-shot classification: accuracy (%) on all classes, mean ± std over seeds"
        return Table(title, heads, out, notes.lines())
    targets = [dataset_name(t) for t in (XD_TARGETS if protocol == "xd" else DG_TARGETS)]
    present = {r.dataset for r in rows}
    columns = [dataset_name(XD_SOURCE)] + [t for t in targets if t in present] + sorted(
        present - set(targets) - {dataset_name(XD_SOURCE), AVERAGE}) + [AVERAGE]
    methods = sorted({(r.method, r.label) for r in rows}, key=str)
    for method, label in methods:
        members = [next((r for r in rows if r.method == method and r.dataset == c), None) for c in columns]
        have = min((m.cells["acc"].n for m in members if m and not m.is_average), default=0)
        expected = len(summary.expected_seeds(protocol))
        out.append([label, *(fmt(m.cells["acc"]) if m else "-" for m in members),
                    f"{have}/{expected}" if have < expected else str(have),
                    _backbone_text(next(m for m in members if m))])
        if compare:
            cells = [(m or Row(protocol, "", "", c, None, {}), "acc") for m, c in zip(members, columns)]
            out += _compare_rows([" " * len(label)], cells, notes, len(out[-1]))
    heads = ["Method", *(f"{c} (source)" if c == dataset_name(XD_SOURCE) else
                         ("Average" if c == AVERAGE else c) for c in columns), "Seeds", "Backbone"]
    what = "cross-dataset transfer" if protocol == "xd" else "domain generalisation"
    title = f"{what.capitalize()} from ImageNet: accuracy (%), mean ± std over seeds; Average over targets"
    return Table(title, heads, out, notes.lines())


def build_tables(summary: Summary, compare: bool = False) -> List[Table]:
    tables = []
    for protocol in summary.rows:
        if protocol == "base2new":
            tables.append(_long_table(summary, protocol, ("base", "new", "hm"), ("Base", "New", "HM"),
                                      "Base-to-new generalisation: accuracy (%) on base and new classes, "
                                      "mean ± std over seeds; HM of the means", compare))
        elif protocol in ("fewshot", "xd", "dg"):
            tables.append(_wide_table(summary, protocol, compare))
        elif protocol == "zeroshot":
            tables.append(_long_table(summary, protocol, ("acc",), ("Acc",),
                                      "Zero-shot CLIP: accuracy (%) on all classes", compare))
        else:
            tables.append(_long_table(summary, protocol, ("acc",), ("Acc",),
                                      "Other runs (layout not recognised): accuracy (%)", compare))
    return tables


def render(tables: Sequence[Table], fmt_name: str, provenance: str = "") -> str:
    """Tables as text in a tabulate format (terminal, markdown, latex)."""
    if fmt_name not in FORMATS:
        raise ResultsError(f"Unknown format {fmt_name!r}; choose one of {', '.join([*FORMATS, 'csv'])}.")
    chunks = []
    for t in tables:
        title = {"markdown": f"### {t.title}", "latex": f"% {t.title}"}.get(fmt_name, t.title)
        body = tabulate(t.rows, headers=t.headers, tablefmt=FORMATS[fmt_name], disable_numparse=True)
        notes = "\n".join(("% " if fmt_name == "latex" else "") + n for n in t.footnotes)
        chunks.append("\n".join(x for x in (title, "", body, "", notes) if x is not None).rstrip() + "\n")
    if provenance and any(t.footnotes for t in tables):
        chunks.append(("% " if fmt_name == "latex" else "") + f"Published numbers: {provenance}\n")
    return "\n".join(chunks)


CSV_METRICS = ("base", "new", "hm", "acc")


def to_csv(summary: Summary, compare: bool = False) -> str:
    """One row per protocol/trainer/dataset (and shots): base, new, hm where they apply, else acc."""
    heads = ["protocol", "trainer", "method", "backbone", "configs", "dataset", "shots", "n_seeds", "seeds",
             "n_datasets"]
    for m in CSV_METRICS:
        heads += [m] + ([f"{m}_std"] if m != "hm" else [])
        if compare:
            heads += [f"reported_{m}", f"diff_{m}"]
    heads += ["config_changes"]
    if compare:
        heads += ["reported_source"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(heads)
    for protocol, rows in summary.rows.items():
        for row in rows:
            seeds = sorted(set().union(*(c.seeds for c in row.cells.values())))
            line = [protocol, row.trainer, row.label, row.backbone or "", "+".join(row.configs), row.dataset,
                    "" if row.shots is None else row.shots, "" if row.is_average else len(seeds),
                    " ".join(map(str, seeds)), row.n_datasets if row.is_average else ""]
            for m in CSV_METRICS:
                c = row.cells.get(m)
                line.append("" if c is None else f"{c.mean:.4f}")
                if m != "hm":
                    line.append("" if c is None or c.std is None else f"{c.std:.4f}")
                if compare:
                    e = row.reported.get(m)
                    line += ["" if e is None else e["value"],
                             "" if e is None or c is None else f"{c.mean - e['value']:.4f}"]
            line.append("; ".join(row.config_changes))
            if compare:
                line.append(" | ".join(dict.fromkeys(f"{e['paper']} ({e['provenance']})"
                                                     for e in row.reported.values())))
            writer.writerow(line)
    return buf.getvalue()


def summarize(root: Path, protocols: Optional[Sequence[str]] = None, trainers: Optional[Sequence[str]] = None,
              configs_dir: Path = CONFIGS_DIR) -> Summary:
    """Collect and aggregate the runs under ``root`` (warnings from reading are added to the summary's)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = collect(root, configs_dir)
    records = [r for r in records
               if (not protocols or r.protocol in protocols) and (not trainers or r.trainer in trainers)]
    summary = Summary(records)
    summary.warnings[:0] = [str(w.message) for w in caught]
    return summary


def report(summary: Summary, fmt_name: str = "terminal", compare: bool = False,
           reported: Optional[Reported] = None) -> str:
    """The tables as text (``csv`` or a tabulate format), with published numbers when ``compare``."""
    if compare:
        reported = reported or Reported()
        reported.attach(summary)
    if fmt_name == "csv":
        return to_csv(summary, compare)
    return render(build_tables(summary, compare), fmt_name, reported.provenance_note if compare else "")
