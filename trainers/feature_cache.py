"""Exact image-feature cache for evaluation (``TEST.FEATURE_CACHE``, default True).

A trainer whose evaluation image features are the frozen CLIP's plain ``encode_image(x)`` declares
``FROZEN_IMAGE_FEATURES = True`` (ZeroshotCLIP, CoOp, CoCoOp, LAMM on CLIP/CoOp, Nemesis over CoOp/CoCoOp). For
those, the features of a test set are the same in every seed, method and run, so the first evaluation stores
them and later ones read them instead of decoding and encoding every image again. Trainers whose image path
carries learned prompts (MaPLe, IVLP, VPT, RESTORE, APLe, LAMM on MaPLe) keep the class default False, and the
key cannot switch the cache on for them.

An entry holds the features ``[N, D]`` of one evaluation set, exactly as evaluation computed them (dtype kept).
Its key is a SHA-256 over:
- the backbone's weights (a digest of every tensor of its state dict, as loaded and cast to its precision);
- the precision (``PREC`` in effect, the weights' dtype) and the device type;
- the test transform (``repr`` of the torchvision pipeline) and the test batch size (batched kernels may round
  differently for other batch shapes, and the cache promises the same bits);
- each image's absolute path, size and modification time, in loader order;
- the torch and open_clip versions.
Anything else changing is a miss, never a stale hit. Logits from a hit go through the same operations on the same
batches as an uncached evaluation, so they equal it bit for bit.

Entries live in ``features/`` of the weights cache directory: ``MODEL.BACKBONE.CACHE_DIR``, else
``$CLIP_CACHE_DIR``, else ``~/.cache/clip`` (as :mod:`clip.loading`). ``python -m tools.cache --info | --clear``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Iterator, Optional, Tuple

import open_clip
import torch

from clip.loading import default_cache_dir
from engine.evaluation.feature_cache import FeatureStore

logger = logging.getLogger(__name__)

FOLDER = "features"
FORMAT = 1  # bump when the meaning of an entry changes


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


def image_records(data_source) -> Iterator[str]:
    """``path, size, mtime_ns`` of each image, in order."""
    for item in data_source:
        path = os.path.abspath(item.impath)
        st = os.stat(path)
        yield f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n"


def entry_key(trainer, loader) -> Tuple[str, dict]:
    """``(key, meta)`` of ``loader``'s evaluation set under ``trainer``'s backbone and precision."""
    backbone, precision = trainer.clip_model, trainer.precision
    parts = {
        "format": FORMAT,
        "weights": weights_digest(backbone),
        "precision": precision.prec,
        "dtype": str(backbone.dtype),
        "device": precision.device.type,
        "transform": repr(loader.dataset.transform),
        "batch_size": loader.batch_size,
        "torch": str(torch.__version__),
        "open_clip": str(open_clip.__version__),
    }
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    for record in image_records(loader.dataset.data_source):
        h.update(record.encode())
    meta = dict(parts, backbone=trainer.cfg.MODEL.BACKBONE.NAME, dataset=trainer.cfg.DATASET.NAME,
                images=len(loader.dataset), created=time.strftime("%Y-%m-%d %H:%M:%S"))
    return h.hexdigest(), meta


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


def cached_evaluation_outputs(trainer, loader):
    """``(logits [B, C], labels [B])`` per batch of ``loader``, reading or filling the cache where it applies."""
    ok, why = cache_applies(trainer, loader)
    if not ok:
        logger.debug("Image-feature cache not used: %s", why)
        yield from _plain_outputs(trainer, loader)
        return
    store = FeatureStore(feature_cache_dir(trainer.cfg.MODEL.BACKBONE.CACHE_DIR))
    try:
        os.makedirs(store.root, exist_ok=True)
    except OSError as e:
        logger.warning("Image-feature cache not used: cannot create %s (%s); set MODEL.BACKBONE.CACHE_DIR to a "
                       "writable folder, or TEST.FEATURE_CACHE False.", store.root, e)
        yield from _plain_outputs(trainer, loader)
        return
    key, meta = entry_key(trainer, loader)
    entry = store.load(key)
    if entry is None:
        with store.lock(key):
            entry = store.load(key)  # another job may have stored it while this one waited
            if entry is None:
                yield from _fill(trainer, loader, store, key, meta)
                return
    logger.info("Image features of %d images read from the cache (%s)", entry["features"].shape[0],
                store.path(key))
    yield from _from_features(trainer, loader, entry["features"])


def _fill(trainer, loader, store: FeatureStore, key: str, meta: dict):
    """Evaluate as usual, keeping each batch's image features, then store them."""
    parts = []
    for batch in loader:
        images, labels = trainer.parse_batch_test(batch)
        features = trainer.test_image_features(images)
        parts.append(features.detach().cpu())
        yield trainer.inference_from_features(features), labels
    try:
        path = store.save(key, torch.cat(parts), meta)
    except OSError as e:  # a full or read-only disk costs the reuse, never the evaluation
        logger.warning("Image features not stored in the cache (%s: %s).", store.root, e)
        return
    logger.info("Image features of %d images stored in the cache (%s)", meta["images"], path)


def draw_loader_seed(loader) -> None:
    """Consume the random numbers that ``iter(loader)`` consumes: one int64 base seed for the workers, drawn from
    ``loader.generator`` (torch's global RNG when None) in ``torch.utils.data.dataloader._BaseDataLoaderIter``.

    A cache hit never iterates the loader, yet it must leave every RNG where an uncached evaluation leaves it;
    otherwise a ``best_val`` run (one validation per epoch) would train differently after a hit than after a miss.
    """
    torch.empty((), dtype=torch.int64).random_(generator=loader.generator)


def _from_features(trainer, loader, features: torch.Tensor):
    """The same batches as the loader's, from stored features; labels from the data source."""
    draw_loader_seed(loader)
    labels = torch.tensor([item.label for item in loader.dataset.data_source], dtype=torch.long)
    if features.shape[0] != labels.shape[0]:
        raise RuntimeError(f"A feature cache entry holds {features.shape[0]} images for a set of "
                           f"{labels.shape[0]}; clear it with `python -m tools.cache --clear`.")
    size = loader.batch_size
    for start in range(0, labels.shape[0], size):
        f = features[start:start + size].to(trainer.device)
        yield trainer.inference_from_features(f), labels[start:start + size].to(trainer.device)
