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

    # the same bytes with another modification time: the same features, so the same entry
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert entry_key(t, t.test_loader)[0] == key

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


def test_features_of_another_cpu_kernel_set_miss(tmp_path, monkeypatch):
    """A cache shared across machines or ATEN_CPU_CAPABILITY settings: another kernel set rounds differently."""
    t = build(tmp_path, cache=tmp_path / "cache")
    key, parts = entry_key(t, t.test_loader)
    assert parts["kernels"] == f"cpu {torch.backends.cpu.get_cpu_capability()}"
    other = "DEFAULT" if torch.backends.cpu.get_cpu_capability() != "DEFAULT" else "AVX2"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
    assert entry_key(t, t.test_loader)[0] != key


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
    from experiments import cache as cache_cli

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


# ---- what the cache must never do: serve other bytes, trust a bad entry, fail the evaluation, delete other files --
def cache_warnings(caplog):
    return [r for r in caplog.records if r.levelname == "WARNING"
            and r.name in ("trainers.feature_cache", "engine.evaluation.feature_cache")]


def uncached(tmp_path, name="plain"):
    logits, labels, _ = evaluate(build(tmp_path, name=name, opts=["TEST.FEATURE_CACHE", "False"]))
    return logits, labels


def store_png(path, rgb):
    """An uncompressed PNG (compress_level 0): every 32x32 RGB image has the same file size."""
    Image.fromarray(np.full((32, 32, 3), rgb, dtype=np.uint8)).save(path, compress_level=0)


def test_same_size_images_swapped_with_restored_times_miss(tmp_path):
    """``cp -p``, ``rsync -a`` and archives restore modification times: other pixels in a file of the same size and
    mtime must not be served the stored features."""
    cache = tmp_path / "cache"
    t = build(tmp_path, cache=cache)
    items = t.test_loader.dataset.data_source
    a, b = items[0].impath, next(i.impath for i in items if i.label != items[0].label)
    store_png(a, (220, 30, 30))
    store_png(b, (30, 40, 220))
    assert os.path.getsize(a) == os.path.getsize(b)
    evaluate(t)  # stores the features of these bytes
    times = {p: os.stat(p) for p in (a, b)}
    data = {p: open(p, "rb").read() for p in (a, b)}
    for p, q in ((a, b), (b, a)):
        open(p, "wb").write(data[q])
        os.utime(p, ns=(times[p].st_atime_ns, times[p].st_mtime_ns))
    assert all(os.stat(p).st_mtime_ns == times[p].st_mtime_ns and os.path.getsize(p) == times[p].st_size
               for p in (a, b))
    ref, ref_y = uncached(tmp_path)
    logits, labels, n = evaluate(build(tmp_path, name="after", cache=cache))
    assert n == len(t.test_loader) and torch.equal(logits, ref) and torch.equal(labels, ref_y)


def _tamper(entry, how):
    f, meta = entry["features"], entry["meta"]
    if how == "shuffled":
        entry["features"] = f.flip(0)
    elif how == "nan":
        entry["features"] = torch.full_like(f, float("nan"))
    elif how == "short":
        entry["features"] = f[:-1]
    elif how == "wide":
        entry["features"] = torch.cat([f, f[:, :1]], 1)
    elif how == "float64":
        entry["features"] = f.double()
    elif how == "renamed":
        meta["key"] = "0" * 64
    elif how == "other-images":
        meta["images_sha256"] = "0" * 64
    elif how == "damaged":
        return b"PK\x03\x04 truncated"
    return entry


@pytest.mark.parametrize("how", ["shuffled", "nan", "short", "wide", "float64", "renamed", "other-images",
                                 "damaged"])
def test_an_untrustworthy_entry_is_refused_once_and_replaced(tmp_path, caplog, how):
    cache = tmp_path / "cache"
    ref, ref_y = uncached(tmp_path)
    t = build(tmp_path, cache=cache)
    evaluate(t)
    path = FeatureStore(str(cache / "features")).entries()[0]
    tampered = _tamper(torch.load(path, weights_only=True), how)
    if isinstance(tampered, bytes):
        open(path, "wb").write(tampered)
    else:
        torch.save(tampered, path)
    caplog.clear()
    logits, labels, n = evaluate(t)
    assert n == len(t.test_loader) and torch.equal(logits, ref) and torch.equal(labels, ref_y)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "is not used" in warnings[0].getMessage()
    t.test()
    assert t.last_results["accuracy"] == pytest.approx(100.0 * float((ref.argmax(1) == ref_y).float().mean()))
    _, _, n = evaluate(t)  # replaced by the evaluation that refused it
    assert n == 0 and entries(cache) == 1


def _fake_writes(monkeypatch, folder, error):
    """torch.save into ``folder`` writes a little, then fails as a full disk does."""
    real_save = torch.save

    def save(obj, f, *a, **k):
        name = f if isinstance(f, str) else os.readlink(f"/proc/self/fd/{f.fileno()}")  # Linux: the fd's path
        if os.path.dirname(os.path.abspath(name)) == str(folder):
            f.write(b"partial")
            raise error
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("error", [RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs "
                                                "598: No space left on device"),
                                   OSError(28, "No space left on device")], ids=["RuntimeError", "ENOSPC"])
def test_a_full_cache_disk_costs_the_reuse_not_the_evaluation(tmp_path, caplog, monkeypatch, error):
    cache = tmp_path / "cache"
    ref, ref_y = uncached(tmp_path)
    t = build(tmp_path, cache=cache)
    _fake_writes(monkeypatch, cache / "features", error)
    caplog.clear()
    for _ in range(2):  # a validation per epoch: one warning in all
        logits, labels, n = evaluate(t)
        assert n == len(t.test_loader) and torch.equal(logits, ref) and torch.equal(labels, ref_y)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "not stored" in warnings[0].getMessage()
    assert entries(cache) == 0 and not [f for f in os.listdir(cache / "features") if f.startswith(".tmp-")]


def test_a_read_only_cache_folder_still_serves_and_never_fails(tmp_path, caplog, monkeypatch):
    """chmod does not bind root (the tests may run as root), so creating files in the folder is refused as a
    read-only file system would: every ``os.open`` that could create or write there raises EACCES."""
    import errno
    import stat as stat_

    cache = tmp_path / "cache"
    folder = str(cache / "features")
    ref, ref_y = uncached(tmp_path)
    t = build(tmp_path, cache=cache)
    evaluate(t)  # one entry stored while the folder was writable
    other = build(tmp_path, name="other", seed=2, cache=cache)  # another backbone: a miss
    ref_other, _, _ = evaluate(build(tmp_path, name="other-plain", seed=2, opts=["TEST.FEATURE_CACHE", "False"]))
    os.chmod(folder, stat_.S_IRUSR | stat_.S_IXUSR)
    real_open = os.open

    def read_only_open(path, flags, *a, **k):
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        if writes and os.path.dirname(os.path.abspath(path)) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only_open)
    caplog.clear()
    try:
        logits, _, n = evaluate(t)  # the stored entry is still read
        assert n == 0 and torch.equal(logits, ref)
        for _ in range(2):
            logits, _, n = evaluate(other)
            assert n == len(other.test_loader) and torch.equal(logits, ref_other)
    finally:
        os.chmod(folder, 0o755)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "cannot lock" in warnings[0].getMessage()


def test_an_unlockable_cache_folder_costs_the_reuse_not_the_evaluation(tmp_path, caplog, monkeypatch):
    import errno

    import engine.evaluation.feature_cache as store_module

    class NoLock:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            raise OSError(errno.ENOLCK, "No locks available", self.path)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(store_module, "FileLock", NoLock)
    ref, ref_y = uncached(tmp_path)
    t = build(tmp_path, cache=tmp_path / "cache")
    caplog.clear()
    logits, labels, n = evaluate(t)
    assert n == len(t.test_loader) and torch.equal(logits, ref) and torch.equal(labels, ref_y)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "No locks available" in warnings[0].getMessage()


def test_clear_removes_only_the_caches_own_files(tmp_path):
    from experiments import cache as cache_cli

    cache = tmp_path / "cache"
    evaluate(build(tmp_path, cache=cache))
    folder = cache / "features"
    store = FeatureStore(str(folder))
    entry = os.path.basename(store.entries()[0])
    key = entry[:-len(".pt")]
    assert (folder / f"{key}.lock").exists()
    leftover = folder / f".tmp-{entry}.abcd1234.part"  # an entry's writer killed mid-write
    leftover.write_bytes(b"x")
    user = {"notes.pt": b"my tensors", ".tmp-chapter3.tex": b"draft", "features.pt": b"mine", "x.lock": b"",
            f"{key[:-1]}.pt": b"63 hex digits"}
    for name, data in user.items():
        (folder / name).write_bytes(data)
    (folder / "sub").mkdir()
    (folder / "sub" / entry).write_bytes(b"not the cache's")
    assert cache_cli.main(["--info", "--cache-dir", str(cache)]) == 0
    assert cache_cli.main(["--clear", "--cache-dir", str(cache)]) == 0
    assert sorted(os.listdir(folder)) == sorted([*user, "sub"])
    assert all((folder / name).read_bytes() == data for name, data in user.items())
    assert (folder / "sub" / entry).exists()
