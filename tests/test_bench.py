"""tools.bench on a tiny run: every figure is produced, finite and positive, on the requested number of images."""
import math

from engine import build_trainer
from engine.utils import set_random_seed
from tests.helpers import tiny_cfg
from experiments import bench


def test_bench_figures_on_a_tiny_coop(tmp_path):
    cfg = tiny_cfg(str(tmp_path / "data"), str(tmp_path / "out"),
                   opts=["TRAINER.COOP.N_CTX", "4", "MODEL.BACKBONE.CACHE_DIR", str(tmp_path / "cache")])
    set_random_seed(1)
    t = build_trainer(cfg)
    result = bench.benchmark(t, steps=2, warmup=1, eval_images=10)
    assert result["test_images"] == 10 and len(t.test_loader.dataset) == 10
    ratios = ["eval_over_load_plus_encoder", "eval_over_encoder_in_memory", "data_loading_share_of_eval",
              "cached_first_over_uncached", "uncached_over_cached_later", "train_step_over_model_cost",
              "data_test_images_per_s", "data_train_images_per_s", "encoder_images_per_s", "train_steps_per_s"]
    for key in ratios:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert t.cfg.TEST.FEATURE_CACHE and t.cfg.MODEL.BACKBONE.CACHE_DIR == str(tmp_path / "cache")  # restored
    assert all(p.grad is None for p in t.prompt_learner.parameters())  # the model-cost pass leaves no gradient
