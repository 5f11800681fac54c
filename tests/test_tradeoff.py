"""tools.tradeoff: each method's base / new / HM accuracy against zero-shot CLIP's, and the trade-off mark."""
from types import SimpleNamespace

import pytest

from experiments import tradeoff
from experiments.results import Cell, Row, harmonic_mean


def row(trainer, dataset, base, new, label=""):
    cells = {"base": Cell(base), "new": Cell(new), "hm": Cell(harmonic_mean(base, new))}
    return Row("base2new", trainer, "toy", dataset, 16, cells, label=label or trainer)


def summary(*rows):
    return SimpleNamespace(rows={"base2new": list(rows)})


def test_deltas_are_differences_from_zero_shot_on_the_same_dataset():
    rows = summary(row("ZeroshotCLIP", "A", 50.0, 60.0), row("CoOp", "A", 65.0, 52.0),
                   row("MaPLe", "A", 62.0, 61.5), row("ZeroshotCLIP", "B", 30.0, 40.0), row("CoOp", "B", 20.0, 45.0),
                   row("CoOp", "C", 70.0, 70.0))  # no zero-shot on C: nothing to compare with
    deltas = tradeoff.against_zero_shot(rows)
    assert [(d.dataset, d.method) for d in deltas] == [("A", "CoOp"), ("A", "MaPLe"), ("B", "CoOp")]
    coop = deltas[0]
    assert (coop.base, coop.new) == (15.0, -8.0)
    assert coop.hm == pytest.approx(2 * 65 * 52 / 117 - 2 * 50 * 60 / 110)
    assert coop.is_tradeoff and coop.pattern == "trade-off: base up, new down"
    assert not deltas[1].is_tradeoff and deltas[1].pattern == "gains on both halves"
    assert deltas[2].pattern == "base down, new up"


def test_a_difference_that_rounds_to_zero_is_neither_up_nor_down():
    zero_shot = 100 * 281 / 450  # 62.44...: the mean of three equal per-seed accuracies differs in the last bits
    seed_mean = (zero_shot + zero_shot + zero_shot) / 3
    assert seed_mean != zero_shot
    rows = summary(row("ZeroshotCLIP", "A", 50.0, zero_shot), row("LAMM", "A", 55.0, seed_mean))
    deltas = tradeoff.against_zero_shot(rows)
    assert not deltas[0].is_tradeoff and deltas[0].pattern == "unchanged on a half"
    lamm_line = next(line for line in tradeoff.report(rows, "markdown").splitlines() if "| LAMM" in line)
    assert "+0.00" in lamm_line and "-0.00" not in lamm_line


def test_report_marks_the_tradeoff_row_and_is_empty_without_zero_shot():
    text = tradeoff.report(summary(row("ZeroshotCLIP", "A", 50.0, 60.0), row("CoOp", "A", 65.0, 52.0)), "markdown")
    coop_line = next(line for line in text.splitlines() if "| CoOp" in line)
    assert "+15.00" in coop_line and "-8.00" in coop_line and "trade-off: base up, new down" in coop_line
    assert tradeoff.report(summary(row("CoOp", "A", 65.0, 52.0)), "markdown") == ""
