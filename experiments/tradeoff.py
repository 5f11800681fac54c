"""The base-to-new trade-off: each method's base, new and HM accuracy against zero-shot CLIP's on the same dataset.

Prompt learning is tuned on the base classes. It usually raises their accuracy and can lower the accuracy on the
new classes it never saw, which zero-shot CLIP classifies with the hand-written prompt (CoOp on the 11 benchmarks:
base 82.7, new 63.2, against zero-shot's 69.3 / 74.2; CoCoOp paper, Zhou et al., CVPR 2022, Table 1). This table
shows that trade-off per method, in the columns Dataset, Method, Δ Base, Δ New, Δ HM and "Against zero-shot".

Δ is the method's seed mean minus zero-shot's (points of accuracy). The last column names the pattern:
``trade-off: base up, new down``, ``gains on both halves``, ``loses on both halves``, ``base down, new up``, or
``unchanged on a half`` where a difference rounds to 0.00 (under `TOLERANCE`: a mean of equal per-seed accuracies
can differ from zero-shot's in its last bits). ``python -m tools.demo`` prints it under the accuracy table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from experiments.results import Row, Summary, Table, render

ZERO_SHOT = "ZeroshotCLIP"
TOLERANCE = 0.005  # points; a smaller difference shows as 0.00 and counts as neither up nor down
METRICS = ("base", "new", "hm")
TRADEOFF = "trade-off: base up, new down"
PATTERNS = {
    (True, False): TRADEOFF,
    (True, True): "gains on both halves",
    (False, False): "loses on both halves",
    (False, True): "base down, new up",
}


@dataclass(frozen=True)
class Delta:
    dataset: str
    method: str
    base: float
    new: float
    hm: float

    @property
    def is_tradeoff(self) -> bool:
        """Base accuracy up and new-class accuracy down against zero-shot CLIP."""
        return self.pattern == TRADEOFF

    @property
    def pattern(self) -> str:
        if abs(self.base) < TOLERANCE or abs(self.new) < TOLERANCE:
            return "unchanged on a half"
        return PATTERNS[(self.base > 0, self.new > 0)]


def _zero_shot_row(rows: List[Row], dataset: str) -> Optional[Row]:
    return next((r for r in rows if r.dataset == dataset and r.trainer == ZERO_SHOT), None)


def against_zero_shot(summary: Summary) -> List[Delta]:
    """One `Delta` per base-to-new row that has base and new results, on a dataset where zero-shot CLIP ran too.

    The average pseudo-dataset and zero-shot's own rows are left out.
    """
    rows = [r for r in summary.rows.get("base2new", []) if not r.is_average]
    deltas = []
    for row in rows:
        zero_shot = _zero_shot_row(rows, row.dataset)
        if row.trainer == ZERO_SHOT or zero_shot is None:
            continue
        if not (set(METRICS) <= row.cells.keys() and set(METRICS) <= zero_shot.cells.keys()):
            continue
        deltas.append(Delta(row.dataset, row.label or row.trainer,
                            *(row.cells[k].mean - zero_shot.cells[k].mean for k in METRICS)))
    return deltas


def _signed(points: float) -> str:
    """`+1.23` / `-1.23`, and `+0.00` for anything that rounds to zero (never `-0.00`)."""
    return f"{round(points, 2) + 0.0:+.2f}"


def table(deltas: List[Delta]) -> Table:
    """The deltas as a `experiments.results.Table` (render it with `experiments.results.render`)."""
    rows = [[d.dataset, d.method, *(_signed(x) for x in (d.base, d.new, d.hm)), d.pattern] for d in deltas]
    return Table("Against zero-shot CLIP: seed mean minus zero-shot accuracy (points); a trade-off raises base "
                 "accuracy and lowers new-class accuracy",
                 ["Dataset", "Method", "Δ Base", "Δ New", "Δ HM", "Against zero-shot"], rows, [])


def report(summary: Summary, fmt_name: str = "terminal") -> str:
    """The trade-off table in a `experiments.results` format; empty when no method can be compared with zero-shot."""
    deltas = against_zero_shot(summary)
    return render([table(deltas)], fmt_name) if deltas else ""
