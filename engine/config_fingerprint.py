"""Which settings a run was made with: the resume check, and the identity of a finished run.

A checkpoint's manifest stores the resolved config of the run that wrote it. Resuming compares it with the
current config, key by key, ignoring :data:`IGNORED_KEYS` (settings that cannot change a result: where files go,
how many loader workers, how often to print or save). Any other difference refuses the resume, because the
restored optimiser and scheduler would silently continue the old run while the new config is recorded.

The same result-relevant keys identify a finished run. ``results.json`` stores the resolved ``config`` and its
:func:`config_fingerprint`; :func:`finished_run_diff` tells whether a finished run is the run a command asks for.
The stored config is authoritative (it also gives the differing keys); the fingerprint is what is compared when a
``results.json`` holds no config. Files written before the fingerprint existed all hold their config, so their
identity is recomputed from it.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Optional, Tuple

from engine.errors import ResumeRefusedError

OVERRIDE_FLAG = "--allow-config-change"

IGNORED_KEYS = frozenset({
    "OUTPUT_DIR", "RESUME", "VERBOSE", "DATASET.ROOT", "MODEL.BACKBONE.CACHE_DIR", "DATALOADER.NUM_WORKERS",
    "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ", "TRAIN.KEEP_LAST",
})


def config_dict(cfg) -> dict:
    """The config as nested plain values (JSON round trip: tuples become lists)."""
    return json.loads(json.dumps(cfg, default=list))


def _flatten(d: dict, prefix: str = "") -> Dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(saved: dict, current: dict) -> List[Tuple[str, object, object]]:
    """``(key, saved value, current value)`` for every result-relevant key that differs (absent = ``None``)."""
    a, b = _flatten(saved), _flatten(current)
    keys = sorted((set(a) | set(b)) - IGNORED_KEYS)
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def relevant_config(config: dict) -> Dict[str, object]:
    """The flattened result-relevant keys of a config dict (``{"OPTIM.LR": 0.002, ...}``)."""
    return {k: v for k, v in _flatten(config).items() if k not in IGNORED_KEYS}


FINGERPRINT_VERSION = "v1"


def config_fingerprint(config: dict) -> str:
    """``v1-<sha256>`` of the result-relevant keys (canonical JSON): equal exactly when :func:`config_diff` is empty.

    The version prefix changes whenever what the digest covers changes, so digests of two definitions never match.
    """
    canonical = json.dumps(relevant_config(config), sort_keys=True, default=list, separators=(",", ":"))
    return f"{FINGERPRINT_VERSION}-{hashlib.sha256(canonical.encode()).hexdigest()}"


def finished_run_diff(results: dict, current: dict) -> Optional[List[Tuple[str, object, object]]]:
    """Whether the run recorded in ``results`` (a parsed ``results.json``) is the run of config ``current``.

    ``[]``: the same run. A non-empty list: ``(key, recorded, current)`` for each differing key (from the stored
    config; with only a stored fingerprint, one ``("config_fingerprint", recorded, current)`` entry). ``None``:
    ``results`` records neither, so nothing can be checked.
    """
    if isinstance(results.get("config"), dict):
        return config_diff(results["config"], current)
    stored = results.get("config_fingerprint")
    if isinstance(stored, str):
        now = config_fingerprint(current)
        return [] if stored == now else [("config_fingerprint", stored, now)]
    return None


def evaluation_diff(results: dict, eval_only: bool, model_dir: Optional[str], load_epoch: Optional[int]
                    ) -> List[Tuple[str, object, object]]:
    """What an evaluation reads besides its config, against ``results``: ``--eval-only``, ``--model-dir`` (compared
    as real paths) and ``--load-epoch``; ``(flag, recorded, asked)`` for each that differs (absent keys: not
    compared)."""
    def same_dir(a, b) -> bool:
        return (not a and not b) or (bool(a) and bool(b) and os.path.realpath(a) == os.path.realpath(b))

    out = []
    if "eval_only" in results and bool(results["eval_only"]) != bool(eval_only):
        out.append(("--eval-only", bool(results["eval_only"]), bool(eval_only)))
    if "model_dir" in results and not same_dir(results["model_dir"], model_dir):
        out.append(("--model-dir", results["model_dir"], model_dir or None))
    if "load_epoch" in results and results["load_epoch"] != load_epoch:
        out.append(("--load-epoch", results["load_epoch"], load_epoch))
    return out


def format_diff(diff, limit: int = 12) -> str:
    lines = [f"  {k}: {old!r} -> {new!r}" for k, old, new in diff[:limit]]
    if len(diff) > limit:
        lines.append(f"  ... and {len(diff) - limit} more")
    return "\n".join(lines)


def check_resume_config(saved: dict, cfg, directory: str, allow: bool) -> list:
    """Refuse (``ResumeRefusedError``) to continue a checkpoint trained with another config unless ``allow``.

    Returns the differences (empty when none), as ``[key, saved, current]`` lists for the run's records.
    """
    diff = config_diff(saved, config_dict(cfg))
    if diff and not allow:
        raise ResumeRefusedError(
            f"{directory} holds a run with another config; resuming it would continue the old run under the new "
            f"settings:\n{format_diff(diff)}\nUse another --output-dir for the new config, or pass {OVERRIDE_FLAG} "
            "to continue the saved run with the new settings (the change is recorded in results.json).")
    return [[k, old, new] for k, old, new in diff]
