"""tools.gpu_check: refuses clearly without CUDA; its per-trainer check runs end to end (here on CPU, tiny CLIP)."""
import argparse

import pytest
import torch

from engine.registry import TRAINER_REGISTRY
from experiments import gpu_check
from tests.helpers import TINY_VIT
from trainers.facts import facts_of
from tools import gpu_check as gpu_check_cli


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda(capsys):
    assert gpu_check_cli.main(["--trainers", "CoOp"]) == 2
    err = capsys.readouterr().err
    assert "No CUDA GPU is visible" in err and "scripts/test.sh" in err


@pytest.mark.parametrize("trainer", ["ZeroshotCLIP", "CoOp"])
def test_one_check_end_to_end_on_cpu(tmp_path, trainer):
    args = argparse.Namespace(device="cpu", root=str(tmp_path / "data"), backbone=TINY_VIT, size=32, steps=2,
                              eval_images=40, opts=["MODEL.BACKBONE.CACHE_DIR", str(tmp_path / "cache")])
    ref = gpu_check.probe_logits(gpu_check.build(trainer, "fp32", args.root, args.backbone, args.size, opts=args.opts))
    row = gpu_check.check_one(trainer, "fp16", ref, args)  # fp16 runs in fp32 on CPU: identical logits
    assert row["failures"] == [] and row["max_logit_diff"] == 0.0
    assert (row["final_loss"] is None) == (trainer == "ZeroshotCLIP")
    assert row["eval_images_per_s"] > 0 and row["eval_over_load_plus_encoder"] > 0
    assert "ok" in gpu_check.format_row(row)
    # a disagreeing reference fails the check, and says by how much
    bad = gpu_check.check_one(trainer, "fp16", ref + 5.0, args)
    assert bad["failures"] and "differ from fp32" in bad["failures"][0]


def test_two_readings_of_fp16_and_their_drift_on_cpu(tmp_path):
    """``fp16`` and ``fp16-m32`` build the two readings (MASTER_WEIGHTS fp16 / fp32); with ``MODEL.HALF_ON_CPU``
    they run in half precision here, and the drift against the fp32 trainer after the same steps is reported."""
    opts = ["MODEL.BACKBONE.CACHE_DIR", str(tmp_path / "cache"), "MODEL.HALF_ON_CPU", "True"]
    args = argparse.Namespace(device="cpu", root=str(tmp_path / "data"), backbone=TINY_VIT, size=32, steps=2,
                              eval_images=20, opts=opts)
    ref = gpu_check.build("CoOp", "fp32", args.root, args.backbone, args.size, opts=opts)
    before = gpu_check.probe_logits(ref)
    gpu_check.train_steps(ref, args.steps)
    after = gpu_check.probe_logits(ref)
    rows = {}
    for reading, dtype in (("fp16", torch.float16), ("fp16-m32", torch.float32)):
        t = gpu_check.build("CoOp", reading, args.root, args.backbone, args.size, opts=opts)
        assert t.prompt_learner.ctx.dtype == dtype and t.clip_model.dtype == torch.float16
        rows[reading] = gpu_check.check_one("CoOp", reading, before, args, after)
    for row in rows.values():
        assert row["failures"] == [] and 0 < row["cosine_drift"] < 1e-1
        assert "cos drift after steps" in gpu_check.format_row(row)
    assert rows["fp16"]["cosine_drift"] != rows["fp16-m32"]["cosine_drift"]


def project_trainers():
    """The trainers the project's ``trainers`` package registers (other tests register throwaway ones)."""
    return sorted(n for n in TRAINER_REGISTRY.registered_names()
                  if TRAINER_REGISTRY.get(n).__module__.startswith("trainers."))


def test_every_registered_trainer_is_checked():
    """Every trainer of the project; a method registered elsewhere with FACTS.gpu_check is checked too."""
    assert set(project_trainers()) <= set(gpu_check.TRAINERS)


@pytest.mark.parametrize("trainer", project_trainers())
def test_each_trainer_builds_in_the_reading_asked_for(tmp_path, trainer):
    """The check sets PREC and MASTER_WEIGHTS on the node the trainer reads (its facts' precision node)."""
    opts = ["MODEL.BACKBONE.CACHE_DIR", str(tmp_path / "cache"), *facts_of(TRAINER_REGISTRY.get(trainer)).tiny_opts]
    t = gpu_check.build(trainer, "fp16-m32", str(tmp_path / "data"), TINY_VIT, 32, opts=opts)
    assert (t.precision.requested, t.precision.master_weights) == ("fp16", "fp32")
