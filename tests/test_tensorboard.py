"""TensorBoard events of a tiny run, read back with TensorBoard's own reader: Dassl's folder, tags and steps."""
import json
import logging
import math
import os
import sys

import pytest
import torch

from engine import build_trainer
from engine.utils import set_random_seed, setup_logger
from engine.utils import tensorboard as tb
from tests.helpers import tiny_cfg

EPOCHS, BATCHES = 3, 6  # TestColors: 6 classes x 8 training images, batches of 8


def _trainer(tmp_path, name):
    out = str(tmp_path / name)
    cfg = tiny_cfg(str(tmp_path / "data"), out, opts=["OPTIM.MAX_EPOCH", str(EPOCHS), "TRAINER.COOP.N_CTX", "4"])
    setup_logger(out)
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def _scalars(output_dir):
    """{tag: [(step, value), ...]} as TensorBoard shows them (orphaned steps of an interrupted run purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(output_dir, "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_events_hold_dassls_tags_at_dassls_steps(tmp_path):
    t = _trainer(tmp_path, "run")
    assert len(t.train_loader_x) == BATCHES
    t.train()
    scalars = _scalars(t.output_dir)
    metrics = [json.loads(line) for line in open(os.path.join(t.output_dir, "metrics.jsonl"))]
    results = json.load(open(os.path.join(t.output_dir, "results.json")))["metrics"]

    assert set(scalars) == {"train/loss", "train/acc", "train/ce", "train/lr"} | {f"test/{k}" for k in results}
    steps = list(range(EPOCHS * BATCHES))
    for tag in ("train/loss", "train/lr"):
        assert [s for s, _ in scalars[tag]] == steps, tag
    loss, lr = dict(scalars["train/loss"]), dict(scalars["train/lr"])
    for epoch, line in enumerate(metrics):
        last = epoch * BATCHES + BATCHES - 1
        # the running mean of the epoch at its last batch is the epoch's loss in metrics.jsonl (fp32 in events)
        assert loss[last] == pytest.approx(line["loss"], rel=1e-6)
        # the epoch's batches ran at its LR; the last batch's value is after the scheduler step (as in Dassl's
        # CoOp, which steps in forward_backward of the last batch): the next epoch's LR
        assert [lr[epoch * BATCHES + b] for b in range(BATCHES - 1)] == pytest.approx([line["lr"]] * (BATCHES - 1))
        if epoch + 1 < EPOCHS:
            assert lr[last] == pytest.approx(metrics[epoch + 1]["lr"])
    # one constant warm-up epoch at 1e-5, then Dassl's cosine over MAX_EPOCH restarted after it:
    # 0.002 (1 + cos(pi e / 3)) / 2 for e = 0, 1
    cosine = [0.002 * (1 + math.cos(math.pi * e / EPOCHS)) / 2 for e in range(EPOCHS - 1)]
    assert [line["lr"] for line in metrics] == pytest.approx([1e-5, *cosine])
    for k, v in results.items():  # the final test, at Dassl's step: the last epoch index
        assert scalars[f"test/{k}"] == [(EPOCHS - 1, pytest.approx(v))]


def test_a_resumed_run_shows_the_same_curves_as_an_uninterrupted_one(tmp_path):
    full = _trainer(tmp_path, "full")
    full.train()

    t = _trainer(tmp_path, "killed")
    original = t.forward_backward

    def dies_in_epoch_3(batch):
        if t.epoch == 2 and t.batch_idx == 2:
            raise KeyboardInterrupt
        return original(batch)

    t.forward_backward = dies_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        t.train()
    killed_steps = [s for s, _ in _scalars(t.output_dir)["train/loss"]]
    assert killed_steps == list(range(2 * BATCHES + 2))  # two batches of epoch 3 ran

    set_random_seed(123)
    resumed = _trainer(tmp_path, "killed")
    resumed.train()
    assert len(os.listdir(os.path.join(resumed.output_dir, "tensorboard"))) == 2  # appended, as Dassl does
    assert _scalars(resumed.output_dir) == _scalars(full.output_dir)


def test_without_tensorboard_one_warning_and_the_run_trains(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when it is not installed
    monkeypatch.setattr(tb, "_warned", False)
    t = _trainer(tmp_path, "run")
    with caplog.at_level(logging.WARNING, logger=tb.__name__):
        t.train()
        assert tb.open_writer(str(tmp_path / "again")) is None
    warnings = [r for r in caplog.records if r.name == tb.__name__]
    assert len(warnings) == 1 and "pip install tensorboard" in warnings[0].getMessage()
    assert os.path.isfile(os.path.join(t.output_dir, "results.json"))
    assert not os.path.exists(os.path.join(t.output_dir, "tensorboard"))
    assert torch.isfinite(t.prompt_learner.ctx).all()
