"""Exact image-feature cache for evaluation (``TEST.FEATURE_CACHE``, default True).

A trainer whose evaluation image features are the frozen CLIP's plain ``encode_image(x)`` declares
``FROZEN_IMAGE_FEATURES = True`` (ZeroshotCLIP, CoOp, CoCoOp, LAMM on CLIP/CoOp, Nemesis over CoOp/CoCoOp). For
those, the features of a test set are the same in every seed, method and run, so the first evaluation stores
them and later ones read them instead of decoding and encoding every image again. Trainers whose image path
carries learned prompts (MaPLe, IVLP, VPT, RESTORE, APLe, LAMM on MaPLe) keep the class default False, and the
key cannot switch the cache on for them.

**The guarantee.** Stored features are used only for the same image bytes, in the same order, under the same
weights, precision, device type and kernel set, test transform, batch size and torch/open_clip versions as when they were
computed, and only as the ``[N, D]`` finite tensor that was written; then logits from a hit go through the same
operations on the same batches as an uncached evaluation and equal it bit for bit. Anything else is a miss: the
evaluation encodes the images as if there were no cache. The key is a SHA-256 over:
- the backbone's weights (a digest of every tensor of its state dict, as loaded and cast to its precision);
- the precision (``PREC`` in effect, the weights' dtype), the device type and its kernels (the CPU's ATen kernel set,
  the GPU's model);
- the test transform (``repr`` of the torchvision pipeline) and the test batch size (batched kernels may round
  differently for other batch shapes, and the cache promises the same bits);
- the number of images and a SHA-256 of every image file's contents, in loader order;
- the torch and open_clip versions.
Images are identified by their contents, not their path, size or times: copies made with ``cp -p``, ``rsync -a``
or an archive keep modification times, so a file of the same size with other pixels would look unchanged to a
key on path, size and mtime. Content hashing is cheap next to what a hit saves: on ToyTinted's 900 test images
(8.1 MB) it takes 29 ms against 0.7 ms for stat-ing them and 253 ms just to decode them (one CPU thread); a whole
hit, hashing included, took 0.028 s against 2.28 s uncached (ZeroshotCLIP on ``toyclip``). Metadata keys (ctime
and inode as git's index uses them) would also need git's racy-timestamp rule and still trust every file
system's clock and timestamp granularity (network file systems, 1-2 s granularity); contents need neither.
Images are hashed again after a miss has encoded them, and the entry is stored only if no file changed meanwhile.
Every entry is validated before use (:meth:`engine.evaluation.feature_cache.FeatureStore.load`: its own key,
stored key parts, image count, shape, dtype, finiteness, checksum).

The cache can only cost its reuse, never the evaluation: a damaged, foreign or altered entry, a full disk, a
read-only or unlockable folder each log one warning (once per run, folder and kind of trouble) and the
evaluation runs without the cache.

Entries live in ``features/`` of the weights cache directory: ``MODEL.BACKBONE.CACHE_DIR``, else
``$CLIP_CACHE_DIR``, else ``~/.cache/clip`` (as :mod:`clip.loading`). ``python -m tools.cache --info | --clear``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from typing import Optional, Tuple

import open_clip
import torch

from clip.loading import default_cache_dir
from engine.evaluation.feature_cache import FeatureStore

logger = logging.getLogger(__name__)

FOLDER = "features"
FORMAT = 2  # bump when the meaning of an entry changes (2: image contents, validated entries)


def feature_cache_dir(cache_dir: Optional[str] = None) -> str:
    """``<weights cache dir>/features``."""
    return os.path.join(default_cache_dir(cache_dir or None), FOLDER)


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every state-dict tensor (name, dtype, shape, bytes); memoised on the (frozen) module."""
    cached = module.__dict__.get("_weights_digest")
    if cached is not None:
        return cached
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    module.__dict__["_weights_digest"] = digest = h.hexdigest()
    return digest


def images_digest(data_source) -> str:
    """SHA-256 over the SHA-256 of each image file's contents, in order (``OSError`` if one cannot be read)."""
    h = hashlib.sha256()
    for item in data_source:
        with open(item.impath, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def kernel_set(device: torch.device) -> str:
    """The kernels that computed the features: the CPU's ATen kernel set (``default``, ``AVX2``, ``AVX512``, chosen
    at start-up or forced by ``ATEN_CPU_CAPABILITY``), or the GPU's model and CUDA version. Features of one kernel
    set differ from another's by rounding, so a cache shared across machines or settings must not mix them."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} cuda {torch.version.cuda}"
    return f"{device.type} {torch.backends.cpu.get_cpu_capability()}"


def entry_key(trainer, loader) -> Tuple[str, dict]:
    """``(key, parts)`` of ``loader``'s evaluation set under ``trainer``'s backbone and precision."""
    backbone, precision = trainer.clip_model, trainer.precision
    data_source = loader.dataset.data_source
    parts = {
        "format": FORMAT,
        "weights": weights_digest(backbone),
        "precision": precision.prec,
        "dtype": str(backbone.dtype),
        "device": precision.device.type,
        "kernels": kernel_set(precision.device),
        "transform": repr(loader.dataset.transform),
        "batch_size": loader.batch_size,
        "torch": str(torch.__version__),
        "open_clip": str(open_clip.__version__),
        "images": len(data_source),
        "images_sha256": images_digest(data_source),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), parts


def cache_applies(trainer, loader) -> Tuple[bool, str]:
    """Whether ``trainer`` may use the cache on ``loader``, and why not."""
    cfg = trainer.cfg
    if not cfg.TEST.FEATURE_CACHE:
        return False, "TEST.FEATURE_CACHE is False"
    if not trainer.FROZEN_IMAGE_FEATURES:
        return False, f"{type(trainer).__name__}'s image path has learned inputs"
    dataset = loader.dataset
    if not hasattr(dataset, "data_source") or getattr(dataset, "k_tfm", 1) != 1:
        return False, "the loader is not a plain image-folder test loader"
    if cfg.DATALOADER.TEST.SAMPLER != "SequentialSampler" or getattr(loader, "drop_last", False):
        return False, "the test loader is not sequential"
    return True, ""


def _plain_outputs(trainer, loader):
    for batch in loader:
        images, labels = trainer.parse_batch_test(batch)
        yield trainer.model_inference(images), labels


def _warn_once(trainer, root: str, kind: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``kind`` of trouble meets ``trainer``'s cache in ``root`` (a run
    validating every epoch warns once, and each run in a warm worker process writes it to its own log)."""
    warned = trainer.__dict__.setdefault("_feature_cache_warned", set())
    if (root, kind) in warned:
        logger.debug("%s", message)
        return
    warned.add((root, kind))
    logger.warning("%s", message)


def _expected(trainer) -> Tuple[int, Optional[torch.dtype]]:
    """Feature dimension and, where the precision fixes it (fp32), the dtype of the stored features."""
    return trainer.clip_model.embed_dim, (torch.float32 if trainer.precision.prec == "fp32" else None)


def _lookup(store: FeatureStore, key: str, parts: dict, trainer, warn: bool = True):
    """The stored features, or None (a missing or untrustworthy entry; the latter is warned about)."""
    dim, dtype = _expected(trainer)
    try:
        return store.load(key, parts, dim, dtype)
    except Exception as e:  # noqa: BLE001 - EntryError, or anything else an odd file raises: never the evaluation
        if warn:
            _warn_once(trainer, store.root, "entry", f"Image-feature cache entry {store.path(key)} is not used: "
                                                     f"{e}. Evaluating without it (it is replaced).")
        return None


def cached_evaluation_outputs(trainer, loader):
    """``(logits [B, C], labels [B])`` per batch of ``loader``, reading or filling the cache where it applies."""
    ok, why = cache_applies(trainer, loader)
    if not ok:
        logger.debug("Image-feature cache not used: %s", why)
        yield from _plain_outputs(trainer, loader)
        return
    store = FeatureStore(feature_cache_dir(trainer.cfg.MODEL.BACKBONE.CACHE_DIR))
    try:
        key, parts = entry_key(trainer, loader)
    except OSError as e:  # an image cannot be read: the evaluation itself reports it
        logger.debug("Image-feature cache not used: %s", e)
        yield from _plain_outputs(trainer, loader)
        return
    except Exception as e:  # noqa: BLE001 - the cache never fails the evaluation
        _warn_once(trainer, store.root, "key", f"Image-feature cache not used: its key could not be computed "
                                               f"({type(e).__name__}: {e}).")
        yield from _plain_outputs(trainer, loader)
        return
    features = _lookup(store, key, parts, trainer)
    if features is None:
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(store.lock(key))
            except Exception as e:  # noqa: BLE001 - read-only, unlockable, not a folder: only the reuse is lost
                _warn_once(trainer, store.root, "lock",
                           f"Image-feature cache in {store.root} not used: cannot lock it ({type(e).__name__}: {e}). "
                           "Set MODEL.BACKBONE.CACHE_DIR to a writable folder, or TEST.FEATURE_CACHE False.")
                yield from _plain_outputs(trainer, loader)
                return
            features = _lookup(store, key, parts, trainer, warn=False)  # another job may have stored it meanwhile
            if features is None:
                yield from _fill(trainer, loader, store, key, parts)
                return
    logger.info("Image features of %d images read from the cache (%s)", features.shape[0], store.path(key))
    yield from _from_features(trainer, loader, features)


def _fill(trainer, loader, store: FeatureStore, key: str, parts: dict):
    """Evaluate as usual, keeping each batch's image features, then store them if no image changed meanwhile."""
    batches = []
    for batch in loader:
        images, labels = trainer.parse_batch_test(batch)
        features = trainer.test_image_features(images)
        batches.append(features.detach().cpu())
        yield trainer.inference_from_features(features), labels
    try:
        if entry_key(trainer, loader)[0] != key:
            logger.warning("Image features not stored in the cache: test images changed during the evaluation.")
            return
        meta = dict(parts, backbone=trainer.cfg.MODEL.BACKBONE.NAME, dataset=trainer.cfg.DATASET.NAME,
                    created=time.strftime("%Y-%m-%d %H:%M:%S"))
        path = store.save(key, torch.cat(batches), meta)
    except Exception as e:  # noqa: BLE001 - a full or read-only disk (torch.save raises RuntimeError) costs the reuse
        _warn_once(trainer, store.root, "store", f"Image features not stored in the cache {store.root} "
                                                 f"({type(e).__name__}: {e}); the evaluation is unaffected.")
        return
    logger.info("Image features of %d images stored in the cache (%s)", parts["images"], path)


def draw_loader_seed(loader) -> None:
    """Consume the random numbers that ``iter(loader)`` consumes: one int64 base seed for the workers, drawn from
    ``loader.generator`` (torch's global RNG when None) in ``torch.utils.data.dataloader._BaseDataLoaderIter``.

    A cache hit never iterates the loader, yet it must leave every RNG where an uncached evaluation leaves it;
    otherwise a ``best_val`` run (one validation per epoch) would train differently after a hit than after a miss.
    """
    torch.empty((), dtype=torch.int64).random_(generator=loader.generator)


def _from_features(trainer, loader, features: torch.Tensor):
    """The same batches as the loader's, from stored (validated) features; labels from the data source."""
    draw_loader_seed(loader)
    labels = torch.tensor([item.label for item in loader.dataset.data_source], dtype=torch.long)
    size = loader.batch_size
    for start in range(0, labels.shape[0], size):
        f = features[start:start + size].to(trainer.device)
        yield trainer.inference_from_features(f), labels[start:start + size].to(trainer.device)
