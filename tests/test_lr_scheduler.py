import pytest
import torch

from engine.config import get_cfg_default
from engine.optim import build_lr_scheduler, build_optimizer
from engine.utils import atomic_torch_save, load_checkpoint


def _trace(epochs, **optim):
    cfg = get_cfg_default()
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.MAX_EPOCH = epochs
    for k, v in optim.items():
        cfg.OPTIM[k] = v
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], cfg.OPTIM)
    sched = build_lr_scheduler(opt, cfg.OPTIM)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs, sched


COOP = dict(LR=0.002, LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant", WARMUP_CONS_LR=1e-5)


def test_dassl_cosine_trace_10_epochs():
    lrs, _ = _trace(10, **COOP)
    expected = [1e-5, 0.002, 0.00195, 0.00181, 0.00159, 0.00131, 0.001, 0.00069, 0.00041, 0.00019]
    assert [round(x, 5) for x in lrs] == expected


def test_dassl_cosine_trace_5_epochs():
    lrs, _ = _trace(5, **COOP)
    assert [round(x, 5) for x in lrs] == [1e-5, 0.002, 0.00181, 0.00131, 0.00069]


def test_linear_warmup_of_one_epoch_equals_constant():
    linear, _ = _trace(10, **{**COOP, "WARMUP_TYPE": "linear", "WARMUP_MIN_LR": 1e-5})
    constant, _ = _trace(10, **COOP)
    assert linear == pytest.approx(constant)


def test_linear_warmup_ramps_and_no_recount():
    lrs, _ = _trace(6, LR=0.1, LR_SCHEDULER="single_step", STEPSIZE=(100,), WARMUP_EPOCH=4,
                    WARMUP_TYPE="linear", WARMUP_MIN_LR=0.001)
    assert lrs == pytest.approx([0.001, 0.025, 0.05, 0.075, 0.1, 0.1])
    lrs, _ = _trace(4, LR=1.0, LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant",
                    WARMUP_CONS_LR=0.5, WARMUP_RECOUNT=False)
    import math
    assert lrs[1] == pytest.approx((1 + math.cos(math.pi * 1 / 4)) / 2)


def test_step_schedules():
    lrs, _ = _trace(5, LR=1.0, LR_SCHEDULER="single_step", STEPSIZE=(2,), GAMMA=0.5)
    assert lrs == pytest.approx([1, 1, 0.5, 0.5, 0.25])
    lrs, _ = _trace(5, LR=1.0, LR_SCHEDULER="multi_step", STEPSIZE=(1, 3), GAMMA=0.1)
    assert lrs == pytest.approx([1, 0.1, 0.1, 0.01, 0.01])


def test_scheduler_state_loads_weights_only(tmp_path):
    _, sched = _trace(3, **COOP)
    path = str(tmp_path / "s.pt")
    atomic_torch_save({"scheduler": sched.state_dict()}, path)
    state = load_checkpoint(path)["scheduler"]
    assert state["last_epoch"] == 3


def test_unknown_optimizer_and_scheduler():
    with pytest.raises(ValueError, match="OPTIM.NAME"):
        _trace(2, NAME="lion")
    with pytest.raises(ValueError, match="LR_SCHEDULER"):
        _trace(2, LR_SCHEDULER="poly")
