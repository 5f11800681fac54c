"""The engine's lifecycle on tiny runs: checkpoints, resume, results files, evaluation caching, transfer."""
import json
import os

import pytest
import torch

from engine import build_trainer
from engine.utils import load_checkpoint, set_random_seed, setup_logger
from tests.helpers import tiny_cfg


def _run(tmp_path, name, epochs=3, opts=(), seed=1, trainer="CoOp"):
    out = str(tmp_path / name)
    cfg = tiny_cfg(str(tmp_path / "data"), out, trainer=trainer, seed=seed,
                   opts=["OPTIM.MAX_EPOCH", str(epochs), "TRAINER.COOP.N_CTX", "4", *opts])
    setup_logger(out)
    set_random_seed(cfg.SEED)
    return cfg, build_trainer(cfg)


def test_checkpoint_holds_only_prompts_and_loads_weights_only(tmp_path):
    cfg, t = _run(tmp_path, "run", epochs=2)
    t.train()
    ckpt = load_checkpoint(os.path.join(cfg.OUTPUT_DIR, "prompt_learner", "model.pth.tar-2"))
    assert set(ckpt) >= {"state_dict", "epoch", "optimizer", "scheduler", "rng"}
    assert list(ckpt["state_dict"]) == ["ctx"]  # no frozen CLIP, no class-name buffers
    assert ckpt["epoch"] == 2
    assert ckpt["state_dict"]["ctx"].dtype == torch.float32
    assert not [f for f in os.listdir(os.path.join(cfg.OUTPUT_DIR, "prompt_learner")) if f.startswith(".tmp")]


def test_outputs_of_a_run(tmp_path):
    cfg, t = _run(tmp_path, "run", epochs=2)
    t.train()
    lines = [json.loads(x) for x in open(os.path.join(cfg.OUTPUT_DIR, "metrics.jsonl"))]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert lines[0]["lr"] == pytest.approx(1e-5) and lines[1]["lr"] == pytest.approx(0.002)
    assert {"loss", "acc", "ce", "time_s"} <= set(lines[0])
    res = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))
    assert res["trainer"] == "CoOp" and res["dataset"] == "TestColors" and res["seed"] == 1
    assert res["metrics"]["total"] == 24 and 0 <= res["metrics"]["accuracy"] <= 100
    assert res["metrics"]["accuracy"] == pytest.approx(100 * res["metrics"]["correct"] / 24)
    assert res["shots_per_class"] == t.dm.dataset.shots_per_class and len(res["shots_per_class"]) == t.num_classes
    log = open(os.path.join(cfg.OUTPUT_DIR, "log.txt")).read()
    assert "* accuracy: " in log and "Finish training" in log


def test_killed_run_resumes_to_identical_results(tmp_path):
    cfg, t = _run(tmp_path, "full", epochs=3)
    t.train()
    full = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))
    full_ctx = t.prompt_learner.ctx.detach().clone()

    cfg, t = _run(tmp_path, "killed", epochs=3)
    original = t.forward_backward

    def dies_in_epoch_3(batch):
        if t.epoch == 2 and t.batch_idx == 2:
            raise KeyboardInterrupt  # killed in the middle of the last epoch
        return original(batch)

    t.forward_backward = dies_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        t.train()
    assert not os.path.exists(os.path.join(cfg.OUTPUT_DIR, "results.json"))

    set_random_seed(123)  # a different process state: resume must restore everything that matters
    cfg, t = _run(tmp_path, "killed", epochs=3)
    t.train()
    resumed = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))
    assert torch.equal(t.prompt_learner.ctx.detach(), full_ctx)
    assert resumed["metrics"] == full["metrics"]
    lines = [json.loads(x) for x in open(os.path.join(cfg.OUTPUT_DIR, "metrics.jsonl"))]
    assert [x["epoch"] for x in lines] == [1, 2, 3]


def test_keep_last_checkpoints(tmp_path):
    cfg, t = _run(tmp_path, "run", epochs=4, opts=["TRAIN.KEEP_LAST", "1"])
    t.train()
    assert sorted(os.listdir(os.path.join(cfg.OUTPUT_DIR, "prompt_learner"))) == ["checkpoint", "model.pth.tar-4"]


def test_text_features_computed_once_per_evaluation(tmp_path):
    cfg, t = _run(tmp_path, "run", epochs=1, opts=["DATALOADER.TEST.BATCH_SIZE", "4"])
    calls = {"n": 0}
    original = t.text_features

    def counted():
        calls["n"] += 1
        return original()

    t.text_features = counted
    t.test()
    assert len(t.test_loader) == 6 and calls["n"] == 1


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    cfg, t = _run(tmp_path, "run", epochs=2)
    with torch.no_grad():
        t.prompt_learner.ctx.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="Loss is nan at epoch 1, batch 1"):
        t.train()


def test_frozen_clip_stays_in_eval_and_prompts_fp32(tmp_path):
    cfg, t = _run(tmp_path, "run", epochs=1)
    t.set_model_mode("train")
    assert t.prompt_learner.training and not t.clip_model.training
    assert all(p.dtype == torch.float32 for p in t.prompt_learner.parameters())
    assert t.get_model_names() == ["prompt_learner"]


def test_learned_context_loads_onto_the_new_classes(tmp_path):
    cfg, t = _run(tmp_path, "base", epochs=1, opts=["DATASET.SUBSAMPLE_CLASSES", "base"])
    t.train()
    assert t.num_classes == 3
    cfg2, t2 = _run(tmp_path, "new", epochs=1, opts=["DATASET.SUBSAMPLE_CLASSES", "new"])
    t2.eval_only = True
    t2.load_model(cfg.OUTPUT_DIR, epoch=1)
    assert torch.equal(t2.prompt_learner.ctx, t.prompt_learner.ctx)
    assert t.classnames == ["red", "green", "blue"] and t2.classnames == ["yellow", "purple", "orange"]
    t2.test()
    # logits on the new classes equal a direct computation with the loaded context
    batch = next(iter(t2.test_loader))
    with torch.no_grad():
        direct = t2.logits(batch["img"])
    t2.before_test()
    cached = t2.model_inference(batch["img"])
    assert torch.allclose(direct, cached, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="--load-epoch"):
        t2.load_model(cfg.OUTPUT_DIR, epoch=7)
