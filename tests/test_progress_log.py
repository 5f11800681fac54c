"""log.txt's training lines read as Dassl's: format, ETA, print rule, and the post-step LR on an epoch's last batch."""
import json
import os
import re

import pytest

from engine import build_trainer
from engine.utils import AverageMeter, MetricMeter, set_random_seed, setup_logger
from engine.utils.progress import eta_seconds, progress_line, should_print
from tests.helpers import tiny_cfg

LINE = re.compile(r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] time \d+\.\d{3} \(\d+\.\d{3}\) "
                  r"data \d+\.\d{3} \(\d+\.\d{3}\) loss \S+ \(\S+\) acc \S+ \(\S+\)(?: \w+ \S+ \(\S+\))* "
                  r"lr (\S+) eta (\d+:\d\d:\d\d)$")


def test_progress_line_by_hand():
    bt, dt, losses = AverageMeter(), AverageMeter(), MetricMeter()
    bt.update(2.0)
    bt.update(4.0)  # avg 3.0
    dt.update(0.5)
    losses.update({"loss": 1.0})
    losses.update({"loss": 2.0})
    # epoch 2 of 3 (0-based 1), batch 2 of 5 (0-based 1): 3 batches left here + 5 in epoch 3 = 8 -> 24 s
    assert eta_seconds(3.0, 1, 5, 1, 3) == 24.0
    line = progress_line(1, 3, 1, 5, bt, dt, losses, 0.002)
    assert line == ("epoch [2/3] batch [2/5] time 4.000 (3.000) data 0.500 (0.500) loss 2.0000 (1.5000) "
                    "lr 2.0000e-03 eta 0:00:24")


def test_print_rule_is_dassls():
    # every PRINT_FREQ batches; every batch when an epoch has fewer batches than PRINT_FREQ; no extra last-batch line
    assert [b + 1 for b in range(12) if should_print(b, 12, 5)] == [5, 10]
    assert [b + 1 for b in range(3) if should_print(b, 3, 5)] == [1, 2, 3]


def test_log_shows_post_step_lr_on_last_batch_metrics_keep_epoch_lr(tmp_path):
    out = str(tmp_path / "run")
    cfg = tiny_cfg(str(tmp_path / "data"), out, opts=["TRAINER.COOP.N_CTX", "4"])  # 2 epochs, 1 constant warm-up
    setup_logger(out)
    set_random_seed(1)
    t = build_trainer(cfg)
    t.train()
    setup_logger("")
    lines = [m for m in (LINE.match(x) for x in open(os.path.join(out, "log.txt")).read().splitlines()) if m]
    nb = len(t.train_loader_x)
    assert nb > 1 and len(lines) == 2 * nb  # fewer batches than PRINT_FREQ (100): a line per batch
    by_pos = {(int(m[1]), int(m[3])): (float(m[5]), m[6]) for m in lines}
    assert all(int(m[2]) == 2 and int(m[4]) == nb for m in lines)
    assert by_pos[(1, 1)][0] == pytest.approx(1e-5)       # warm-up LR while epoch 1 runs
    assert by_pos[(1, nb)][0] == pytest.approx(2e-3)      # Dassl: stepped before the last batch's line
    assert by_pos[(2, nb)][1] == "0:00:00"                # nothing left
    metrics = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    assert [m["lr"] for m in metrics] == pytest.approx([1e-5, 2e-3])  # the LR each epoch ran at
