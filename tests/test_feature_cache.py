"""The evaluation image-feature cache (trainers/feature_cache.py): hits, misses, bit-equal logits, which trainers
may use it, concurrent jobs, and tools.cache. Every cache here lives under tmp_path."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from engine import build_trainer
from engine.utils import set_random_seed
from engine.evaluation.feature_cache import FeatureStore
from tests.helpers import TINY_VIT_DEPTHS, tiny_cfg
from trainers.feature_cache import cache_applies, entry_key, feature_cache_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FROZEN = {  # trainers whose image path has no learned input: the cache applies
    "ZeroshotCLIP": [],
    "CoOp": ["TRAINER.COOP.N_CTX", "4"],
    "CoCoOp": ["TRAINER.COCOOP.N_CTX", "4"],
    "LAMM-clip": ["TRAINER.LAMM.BASE", "clip"],
    "LAMM-coop": ["TRAINER.LAMM.BASE", "coop"],
    "Nemesis-coop": ["TRAINER.NEMESIS.BASE", "coop", "TRAINER.COOP.N_CTX", "4"],
    "Nemesis-cocoop": ["TRAINER.NEMESIS.BASE", "cocoop", "TRAINER.COCOOP.N_CTX", "4"],
}
LEARNED = {  # learned image paths: the cache can never be switched on
    **TINY_VIT_DEPTHS,
    "APLe": ["TRAINER.APLE.PROMPT_DEPTH_TEXT", "3", "TRAINER.APLE.PROMPT_DEPTH_VISION", "3"],
    "LAMM-maple": ["TRAINER.LAMM.BASE", "maple", "TRAINER.LAMM.N_CTX", "2", "TRAINER.LAMM.PROMPT_DEPTH", "3"],
}


def build(root, setting="CoOp", name="run", opts=(), seed=1, cache=None):
    trainer = setting.split("-")[0]
    extra = {**FROZEN, **LEARNED}[setting]
    cache_opts = ["MODEL.BACKBONE.CACHE_DIR", str(cache)] if cache else []
    cfg = tiny_cfg(str(root / "data"), str(root / name), trainer=trainer, seed=seed,
                   opts=["OPTIM.MAX_EPOCH", "1", "DATALOADER.TEST.BATCH_SIZE", "5", *extra, *cache_opts, *opts])
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def evaluate(t):
    """Logits and labels of one evaluation through the trainer's path, and how many image batches it encoded."""
    encoded = {"n": 0}
    original = t.image_features

    def counted(images):
        encoded["n"] += 1
        return original(images)

    t.image_features = counted
    t.set_model_mode("eval")
    with torch.no_grad():
        t.before_test()
        out = list(t.evaluation_outputs(t.test_loader))
        t.after_test()
    del t.image_features
    return torch.cat([o for o, _ in out]), torch.cat([y for _, y in out]), encoded["n"]


def entries(cache):
    return FeatureStore(os.path.join(str(cache), "features")).info()[0]


@pytest.mark.parametrize("setting", ["CoOp", "CoCoOp"])
def test_cached_logits_equal_uncached_bit_for_bit(tmp_path, setting):
    cache = tmp_path / "cache"
    plain = build(tmp_path, setting, opts=["TEST.FEATURE_CACHE", "False"], cache=cache)
    ref, ref_y, n_plain = evaluate(plain)
    t = build(tmp_path, setting, cache=cache)
    first, y1, n1 = evaluate(t)   # miss: encodes and stores
    second, y2, n2 = evaluate(t)  # hit: no image is decoded or encoded
    assert n_plain == n1 == len(t.test_loader) and n2 == 0
    assert entries(cache) == 1
    assert ref.dtype == torch.float32 and torch.equal(first, ref) and torch.equal(second, ref)
    assert torch.equal(ref_y, y1) and torch.equal(ref_y, y2)
    # a whole run reads the stored features too, and writes the same results
    t.test()
    assert t.last_results["accuracy"] == pytest.approx(100.0 * float((ref.argmax(1) == ref_y).float().mean()))


def test_a_hit_leaves_the_rng_where_an_uncached_evaluation_does(tmp_path):
    """Training after a per-epoch validation (best_val) must not depend on whether the validation hit the cache."""
    cache = tmp_path / "cache"
    plain = build(tmp_path, "CoOp", opts=["TEST.FEATURE_CACHE", "False"], cache=cache)
    torch.manual_seed(7)
    evaluate(plain)
    after_plain = torch.get_rng_state()
    t = build(tmp_path, "CoOp", cache=cache)
    evaluate(t)  # miss: fills the cache
    torch.manual_seed(7)
    _, _, n = evaluate(t)
    assert n == 0 and torch.equal(torch.get_rng_state(), after_plain)


def test_shared_across_methods_and_seeds_not_across_weights(tmp_path):
    cache = tmp_path / "cache"
    evaluate(build(tmp_path, "CoOp", cache=cache))
    _, _, n = evaluate(build(tmp_path, "ZeroshotCLIP", name="zs", cache=cache))
    assert n == 0 and entries(cache) == 1  # same frozen CLIP, same images: ZeroshotCLIP reads CoOp's entry
    # random:... backbones are drawn from the seed: another seed is another backbone, hence a miss
    _, _, n = evaluate(build(tmp_path, "CoOp", name="seed2", seed=2, cache=cache))
    assert n > 0 and entries(cache) == 2


def test_misses_on_changed_image_transform_precision_weights(tmp_path):
    cache = tmp_path / "cache"
    t = build(tmp_path, cache=cache)
    key, _ = entry_key(t, t.test_loader)
    evaluate(t)

    # a changed image (new size and mtime)
    path = t.test_loader.dataset.data_source[0].impath
    Image.fromarray(np.zeros((33, 33, 3), dtype=np.uint8)).save(path)
    assert entry_key(t, t.test_loader)[0] != key
    _, _, n = evaluate(t)
    assert n == len(t.test_loader) and entries(cache) == 2
    key = entry_key(t, t.test_loader)[0]

    # the same bytes rewritten later: the modification time alone is enough
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert entry_key(t, t.test_loader)[0] != key
    key = entry_key(t, t.test_loader)[0]

    # another test transform
    t2 = build(tmp_path, name="bilinear", opts=["INPUT.INTERPOLATION", "bilinear"], cache=cache)
    assert entry_key(t2, t2.test_loader)[0] != key

    # another precision of the same weights (bf16 weights on CPU)
    t3 = build(tmp_path, name="bf16", cache=cache)
    assert entry_key(t3, t3.test_loader)[0] == key
    t3.clip_model.to(torch.bfloat16)
    t3.clip_model.__dict__.pop("_weights_digest", None)
    t3.precision.prec, t3.precision.backbone_dtype = "bf16", torch.bfloat16
    assert entry_key(t3, t3.test_loader)[0] != key

    # other weights (one value changed, as in a replaced weights file)
    t4 = build(tmp_path, name="weights", cache=cache)
    with torch.no_grad():
        t4.clip_model.model.visual.proj[0, 0] += 1e-3
    t4.clip_model.__dict__.pop("_weights_digest", None)
    assert entry_key(t4, t4.test_loader)[0] != key


def test_off_switch_and_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIP_CACHE_DIR", str(tmp_path / "env"))
    assert feature_cache_dir("") == str(tmp_path / "env" / "features")
    assert feature_cache_dir(str(tmp_path / "cfg")) == str(tmp_path / "cfg" / "features")
    t = build(tmp_path, opts=["TEST.FEATURE_CACHE", "False"])
    assert cache_applies(t, t.test_loader) == (False, "TEST.FEATURE_CACHE is False")
    evaluate(t)
    assert not os.path.exists(tmp_path / "env" / "features")
    evaluate(build(tmp_path, name="on"))  # default on: the entry goes to $CLIP_CACHE_DIR/features
    assert entries(tmp_path / "env") == 1


def _images(n=3, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("setting", list(FROZEN))
def test_frozen_declarations_hold(tmp_path, setting):
    """Declared frozen: evaluation image features are CLIP's plain encode_image, whatever the learned values."""
    t = build(tmp_path, setting, cache=tmp_path / "cache")
    assert t.FROZEN_IMAGE_FEATURES and cache_applies(t, t.test_loader)[0]
    x = _images()
    t.set_model_mode("eval")
    with torch.no_grad():
        plain = t.clip_model.model.encode_image(x)
        for name in t.get_model_names():
            for p in t._models[name].parameters():
                p.add_(torch.randn_like(p))
        assert torch.equal(t.test_image_features(x), plain)


@pytest.mark.parametrize("setting", list(LEARNED))
def test_learned_image_paths_never_use_the_cache(tmp_path, setting):
    t = build(tmp_path, setting, opts=["TEST.FEATURE_CACHE", "True"], cache=tmp_path / "cache")
    assert not t.FROZEN_IMAGE_FEATURES
    ok, why = cache_applies(t, t.test_loader)
    assert not ok and "learned" in why
    x = _images()
    t.set_model_mode("eval")
    with torch.no_grad():
        before = t.test_image_features(x)
        for name in t.get_model_names():
            for p in t._models[name].parameters():
                p.add_(torch.randn_like(p))
        assert not torch.equal(t.test_image_features(x), before)  # the declaration is needed: features move
    evaluate(t)
    assert entries(tmp_path / "cache") == 0


WORKER = """
import sys, time, json, os, torch
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.test_feature_cache import build, evaluate
root, go = Path({root!r}), {go!r}
t = build(root, name="w{i}", cache=root / "cache")
open(str(root / "ready{i}"), "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
logits, labels, n = evaluate(t)
torch.save(logits, str(root / "w{i}.pt"))
print(json.dumps({{"encoded": n}}))
"""


def test_concurrent_jobs_compute_once_and_agree(tmp_path):
    """Three processes miss at the same moment: one computes and stores, the others wait for it and read it."""
    from tests.helpers import make_color_dataset

    make_color_dataset(str(tmp_path / "data"))
    go = str(tmp_path / "go")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER.format(repo=REPO, root=str(tmp_path), go=go, i=i)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    deadline = time.time() + 300
    while not all((tmp_path / f"ready{i}").exists() for i in range(3)) and time.time() < deadline:
        time.sleep(0.05)  # all three built: they reach the cache together
    open(go, "w").close()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1])["encoded"])
    assert sorted(outs) == [0, 0, 5]  # exactly one job encoded the 24 test images (5 batches of at most 5)
    logits = [torch.load(str(tmp_path / f"w{i}.pt")) for i in range(3)]
    assert all(torch.equal(logits[0], x) for x in logits[1:])
    folder = tmp_path / "cache" / "features"
    assert entries(tmp_path / "cache") == 1 and not [f for f in os.listdir(folder) if f.startswith(".tmp-")]


def test_tools_cache_info_and_clear(tmp_path, capsys):
    from tools import cache as cache_cli

    cache = tmp_path / "cache"
    evaluate(build(tmp_path, cache=cache))
    n_bytes = os.path.getsize(FeatureStore(str(cache / "features")).entries()[0])
    assert cache_cli.main(["--info", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "1 entries" in out and f"{n_bytes} bytes" in out and str(cache / "features") in out
    assert cache_cli.main(["--clear", "--cache-dir", str(cache)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert entries(cache) == 0
    _, _, n = evaluate(build(tmp_path, name="again", cache=cache))
    assert n > 0  # cleared: encoded again


def test_an_unusable_cache_folder_costs_the_reuse_not_the_evaluation(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would be")
    ref, _, _ = evaluate(build(tmp_path, name="plain", opts=["TEST.FEATURE_CACHE", "False"]))
    logits, _, n = evaluate(build(tmp_path, cache=blocker))
    assert n > 0 and torch.equal(logits, ref)
