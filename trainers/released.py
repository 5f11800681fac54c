"""Official released checkpoints -> this project's modules (``--eval-only --model-dir RELEASED_RUN``).

The official repositories save with Dassl (``<run>/<registered name>/model.pth.tar-<E>``, fp16 tensors, a pickled
scheduler read by :mod:`engine.utils.dassl_checkpoint`). Official names: ``tests/data/golden/name_map.json`` and
docs/OFFICIAL_CODE.md. What each layout needs here:

- CoOp, CoCoOp, Nemesis (``prompt_learner``: ``ctx``, CoCoOp's ``meta_net.*``, and the class-name buffers
  ``token_prefix``/``token_suffix``): the buffers are dropped (:func:`drop_class_buffers`, as CoOp's own
  ``load_model`` deletes them) and rebuilt for the current class set; fp16 values are copied into the fp32
  parameters. ``PromptTrainer.load_model_state_dict`` applies this to every trainer.
- MaPLe (whole ``CustomCLIP`` under ``MultiModalPromptLearner``): ``trainers.maple.strip_released_prefix``.
- IVLP and VPT (whole ``CustomCLIP``, prompts named ``VPT``/``VPT_shallow``): ``trainers.ivlp.from_released_state``.
- RESTORE's ``MaPLe_FSA`` (one ``CustomCLIP`` under ``MultiModalPromptLearner``: MaPLe's prompt learner, the two
  ``Feature_Calibrator`` adapters and their ratios): :func:`restore_surgery_state` and
  :func:`restore_reference_state` split it over this project's three modules (``RestoreTrainer.load_model``).
- LAMM (``prompt_learner``: ``ctx``, the learned label table ``token_classes [C, k, d]`` and its initial copy
  ``fix_token``): :func:`lamm_released_state`. The official file has no class names, so its rows are taken as the
  CURRENT classes in label order; it must be evaluated on the class set it was trained on (the row count is checked).
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import torch

State = Dict[str, torch.Tensor]

CLASS_BUFFERS = ("token_prefix", "token_suffix")
RESTORE_ADAPTERS = {"text_adapter.": "text.", "visual_adapter.": "vision."}
RESTORE_LAYERS = {"post_ln.": "norm.", "FFN.0.": "fc1.", "FFN.2.": "fc2."}
RESTORE_RATIOS = {"text_cali_ratio": "text_ratio", "vis_cali_ratio": "vision_ratio"}
RESTORE_REFERENCE = {"init_text_prompt_norm": "text", "init_visual_prompt_norm": "vision"}


def drop_class_buffers(state: State) -> State:
    """``state`` without Dassl's class-name buffers (``token_prefix``, ``token_suffix``, with any prefix)."""
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in CLASS_BUFFERS}


def is_released_restore(state: State) -> bool:
    return any(k.startswith(tuple(RESTORE_ADAPTERS)) for k in state)


def restore_surgery_state(state: State) -> State:
    """``MaPLe_FSA`` adapters and ratios -> ``SurgeryBlock`` keys (``text|vision.{norm,fc1,fc2}``, ``*_ratio``).

    ``text_adapter.post_ln`` -> ``text.norm``, ``FFN.0`` -> ``fc1``, ``FFN.2`` -> ``fc2`` (``visual_adapter`` ->
    ``vision``); ``text_cali_ratio``/``vis_cali_ratio`` (parameters, any shape of one element) -> the ratio
    buffers, with ``ratios_updated`` set: a released model is final, its ratios are never updated again.
    """
    out: State = {}
    for key, value in state.items():
        for src, dst in RESTORE_ADAPTERS.items():
            rest = key[len(src):] if key.startswith(src) else ""
            for layer, name in RESTORE_LAYERS.items():
                if rest.startswith(layer):
                    out[dst + name + rest[len(layer):]] = value
        if key in RESTORE_RATIOS:
            out[RESTORE_RATIOS[key]] = value.reshape(())
    if out:
        out["ratios_updated"] = torch.tensor(True)
    return out


def restore_reference_state(state: State) -> Optional[State]:
    """The FSC reference Gram norms (``init_text_prompt_norm``/``init_visual_prompt_norm``) when the file has them;
    they only matter for further training, so their absence is not an error."""
    out = {dst: state[src].reshape(-1) for src, dst in RESTORE_REFERENCE.items() if src in state}
    if len(out) < len(RESTORE_REFERENCE):
        return None
    out["captured"] = torch.tensor(True)
    return out


def lamm_released_state(state: State, classnames: List[str], label_prefix: str) -> Tuple[State, Optional[dict]]:
    """An official LAMM prompt-learner state -> ``({"prompt.ctx", <label_prefix>values, <label_prefix>anchor},
    label-table meta)``; any other state is returned unchanged with ``None``.

    ``token_classes [C, k, d]`` -> ``values [C*k, d]`` (class-major), ``fix_token`` -> ``anchor`` (the same
    layout; ``token_classes`` itself when absent), ``ctx`` -> ``prompt.ctx``; the meta names the current classes.
    """
    state = {re.sub(r"^prompt_learner\.", "", k): v for k, v in state.items()}
    if "token_classes" not in state:
        return state, None
    table = state["token_classes"]
    n_cls, k, width = table.shape
    if n_cls != len(classnames):
        raise ValueError(f"This official LAMM checkpoint holds labels for {n_cls} classes but the current class set "
                         f"has {len(classnames)}. Its file does not name its classes, so it can only be evaluated on "
                         "the dataset and class subset it was trained on (same DATASET.SUBSAMPLE_CLASSES).")
    anchor = state.get("fix_token", table)
    out = {f"{label_prefix}values": table.reshape(n_cls * k, width),
           f"{label_prefix}anchor": anchor.reshape(n_cls * k, width)}
    if "ctx" in state:
        out["prompt.ctx"] = state["ctx"]
    return out, {"classnames": list(classnames), "counts": [k] * n_cls}
