"""Resolve a backbone name to an open_clip CLIP model with its weights.

Accepted names (``MODEL.BACKBONE.NAME``):
- CoOp's names ``RN50, RN101, RN50x4, RN50x16, RN50x64, ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px``: OpenAI's
  weights. The original OpenAI file (e.g. ``ViT-B-16.pt``, the name OpenAI's ``clip`` package caches under
  ``~/.cache/clip``) is used when it is in the cache directory; otherwise open_clip fetches OpenAI's weights.
- a path to a checkpoint file: OpenAI's ``.pt`` (TorchScript or state dict);
- ``ARCH:PRETRAINED``, any open_clip pair (``ViT-B-16:laion2b_s34b_b88k``) or ``ARCH:/path/to/weights``;
- ``toyclip``: the tiny CLIP pretrained on the toy world, shipped in ``clip/pretrained/``;
- ``random:ARCH`` or ``random:/path/config.json``: an open_clip architecture with RANDOM weights, for tests and
  benchmarks of speed only (a warning says so).

The cache directory is ``MODEL.BACKBONE.CACHE_DIR``, else ``$CLIP_CACHE_DIR``, else ``~/.cache/clip``.

Offline: weights that open_clip fetches from the Hugging Face Hub are first checked with one request to the Hub
(:func:`hub_reachable`). When it does not answer, open_clip runs in huggingface_hub's documented offline mode
(``HF_HUB_OFFLINE=1``: files from the local cache only, no request), so a missing file is reported at once rather than
after huggingface_hub's retries (about a minute); online nothing changes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Optional
import urllib.error
import urllib.request

import open_clip
import torch

logger = logging.getLogger(__name__)

# CoOp/OpenAI name -> (open_clip architecture, file name of OpenAI's release)
OPENAI_MODELS = {
    "RN50": ("RN50", "RN50.pt"),
    "RN101": ("RN101", "RN101.pt"),
    "RN50x4": ("RN50x4", "RN50x4.pt"),
    "RN50x16": ("RN50x16", "RN50x16.pt"),
    "RN50x64": ("RN50x64", "RN50x64.pt"),
    "ViT-B/32": ("ViT-B-32", "ViT-B-32.pt"),
    "ViT-B/16": ("ViT-B-16", "ViT-B-16.pt"),
    "ViT-L/14": ("ViT-L-14", "ViT-L-14.pt"),
    "ViT-L/14@336px": ("ViT-L-14-336", "ViT-L-14-336px.pt"),
}


class WeightsNotFoundError(FileNotFoundError):
    pass


def available_models():
    return list(OPENAI_MODELS) + ["toyclip", "ARCH:PRETRAINED (open_clip)", "path/to/checkpoint.pt"]


def default_cache_dir(cache_dir: Optional[str] = None) -> str:
    return os.path.expanduser(cache_dir or os.environ.get("CLIP_CACHE_DIR") or "~/.cache/clip")


HUB_PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face Hub (``HF_ENDPOINT``) answers one HEAD request, through the environment's proxy
    settings and without retries; any HTTP answer counts."""
    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):  # no route, no name resolution, refused, timed out
        return False
    return True


@contextlib.contextmanager
def _hub_offline_mode():
    """huggingface_hub's offline mode (what ``HF_HUB_OFFLINE=1`` sets at import) for the duration of the block."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _create_pretrained(arch: str, pretrained: str, cache_dir: str) -> torch.nn.Module:
    """``open_clip.create_model(arch, pretrained)``; when the weights come from an unreachable Hugging Face Hub, from
    the local cache only. Raises :class:`WeightsNotFoundError` whose message starts with the reason."""
    from huggingface_hub import constants

    from_hub = bool(open_clip.get_pretrained_cfg(arch, pretrained).get("hf_hub"))
    offline = from_hub and not constants.HF_HUB_OFFLINE and not hub_reachable()
    try:
        with _hub_offline_mode() if offline else contextlib.nullcontext():
            return open_clip.create_model(arch, pretrained=pretrained, cache_dir=cache_dir, device="cpu",
                                          precision="fp32")
    except Exception as e:  # noqa: BLE001 - turned into an actionable message by the callers
        reason = (f"no answer from {constants.ENDPOINT}, and no usable copy in the local cache" if offline
                  else f"{type(e).__name__}: {e}")
        raise WeightsNotFoundError(reason) from None


def _load_openai_file(path: str) -> torch.nn.Module:
    return open_clip.load_openai_model(path, precision="fp32", device="cpu")


def _load_openai(name: str, cache_dir: str) -> torch.nn.Module:
    arch, fname = OPENAI_MODELS[name]
    local = os.path.join(cache_dir, fname)
    if os.path.isfile(local):
        return _load_openai_file(local)
    try:
        return _create_pretrained(arch, "openai", cache_dir)
    except WeightsNotFoundError as e:
        raise WeightsNotFoundError(
            f"CLIP weights for {name} are not available offline and could not be downloaded ({e}). "
            f"Put OpenAI's release file {fname} at {local} (it is what OpenAI's `clip` package caches in "
            "~/.cache/clip), or set MODEL.BACKBONE.CACHE_DIR / $CLIP_CACHE_DIR to the folder that holds it, or run "
            "once with internet access."
        ) from None


def _load_random(spec: str) -> torch.nn.Module:
    if spec.endswith(".json"):
        with open(spec) as f:
            cfg = json.load(f)
        cfg = cfg.get("model_cfg", cfg)
        model = open_clip.model.CLIP(**cfg)
    else:
        model = open_clip.create_model(spec, pretrained=None, device="cpu")
    logger.warning("Backbone random:%s has RANDOM weights: use it for tests and speed benchmarks only.", spec)
    return model


def load_model(name: str, cache_dir: Optional[str] = None) -> torch.nn.Module:
    """The open_clip model for ``name``, on CPU in fp32 and eval mode (precision is applied by the caller)."""
    if not name:
        raise ValueError("MODEL.BACKBONE.NAME is empty: set it in the trainer config or with --backbone "
                         "(e.g. ViT-B/16, RN50, toyclip).")
    cache = default_cache_dir(cache_dir)
    if name in OPENAI_MODELS:
        model = _load_openai(name, cache)
    elif name == "toyclip":
        from clip.toyclip import create_toyclip

        model = create_toyclip()
    elif name.startswith("random:"):
        model = _load_random(name[len("random:"):])
    elif os.path.isfile(name):
        model = _load_openai_file(name)
    elif ":" in name:
        arch, pretrained = name.split(":", 1)
        try:
            model = _create_pretrained(arch, pretrained, cache)
        except WeightsNotFoundError as e:
            raise WeightsNotFoundError(
                f"Could not load open_clip model {arch} with weights {pretrained} ({e}). "
                f"Offline, pass the weights file as {arch}:/path/to/file or put it in {cache}.") from None
    else:
        raise WeightsNotFoundError(
            f'Unknown backbone "{name}": not a CoOp name ({", ".join(OPENAI_MODELS)}), not "toyclip", not an '
            "existing file and not an open_clip ARCH:PRETRAINED pair.")
    return model.float().eval()
