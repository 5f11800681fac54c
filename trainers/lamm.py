"""LAMM (Gao et al., AAAI 2024, arXiv 2312.08212): trainable class-label tokens with a hierarchical loss, as a
plug-in on frozen CLIP ("LAMM"), CoOp ("CoOp+LAMM") and MaPLe ("MaPLe+LAMM").

Each class ``c`` gets learned label tokens ``<M_c>`` in place of its name's tokens (``trainers.lamm_labels``):

    learned   t_c  = [SOS] ctx <M_c> [rest of the name] . [EOT]      (the prompt that is trained and evaluated)
    original  t0_c = [SOS] ctx [class name] . [EOT]                  (the code's ``forward_test``)

    L = CE(z, y) + λ_WC * sum (M - M0)^2 + λ_COS * mean_i (1 - cos(t_{y_i}, sg(t0_{y_i}))) + λ_KD * KD_T(z, z0)

with ``z``/``z0`` the logits from ``t``/``t0`` (gaojingsheng/LAMM ``CustomCLIP.forward`` with
``--triplet-loss``; docs/LAMM.md). ``TRAINER.LAMM.BASE``:

- ``clip``: the context is "a photo of a" and frozen (``--origin-clip``), so ``t0`` is CLIP's hand-crafted
  feature and only the label tokens train;
- ``coop``: CoOp's learned context (``CoOpPromptLearner``); ``t0`` uses the *current* context with the original
  name, so it is not frozen CLIP and, in ``released`` KD, gradients reach the context through ``z0`` too;
- ``maple``: MaPLe's coupled deep prompts (``trainers.maple.MaPLePromptLearner``); as the released code, one
  learned token per class takes the slot of "of" and the full name stays ("[SOS] ctx ctx <M_c> a {class}. [EOT]");
  ``MAPLE_LABEL_SLOT name`` puts the labels in place of the class name after MaPLe's fixed text
  ("[SOS] ctx ctx of a <M_c> . [EOT]").

Where the released code and the paper differ, the default reproduces the code and a key gives the other reading;
every choice is listed in docs/LAMM.md:

- ``LABEL_TOKENS`` ``min_len`` (code: the first min-length tokens of each name) | ``all`` (paper: every name token);
- ``MAPLE_LABEL_SLOT`` ``released`` (the code's slot of "of", one token) | ``name`` (labels replace the class name);
- ``WC_WEIGHT`` 1.0 with ``WC_PER_SHOT False``: the released few-shot scripts never pass ``--shots``, so the code's
  ``1/cfg.shots`` is 1 at every shot count; ``WC_PER_SHOT True`` gives ``WC_WEIGHT / DATASET.NUM_SHOTS`` (1/shots,
  the apparent intent and what the base2new/continual scripts' ``--shots 16`` gave);
- ``COS_MODE`` ``released`` (0 when the batch holds one class) | ``standard`` (always the batch mean);
- ``KD_MODE`` ``released`` (reversed, non-detached cross-entropy) | ``standard`` (KL to detached ``z0``);
- ``RANDOM_INIT``: label tokens from ``N(0, 0.02^2)``; the ``L_WC`` anchor is that draw, as in the code;
- the learned labels are saved and loaded by class name (the released MaPLe loader dropped them); a class with
  no learned label falls back to its name's tokens, with a log line.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.checkpoint_set import matching_state

from .base import PromptTrainer, clip_logits
from .coop import CoOpPromptLearner
from .deep_prompts import check_depth
from .lamm_labels import LABEL_TOKEN_MODES, LabelTable
from .lamm_losses import LOSS_MODES, feature_cosine_loss, logit_distillation
from .maple import MaPLePromptLearner
from .prompt_types import TextPrompts, VisionPrompts
from .facts import MethodFacts, OfficialConfig, ProtocolDefaults, official_configs
from .released import drop_class_buffers, lamm_released_state

logger = logging.getLogger(__name__)

BASES = ("clip", "coop", "maple")
LABEL_PREFIX = "labels."  # state-dict prefix of the label table inside every LAMM prompt learner
META_KEY = "lamm_labels"  # checkpoint entry with the label table's class names and token counts


class LAMMPromptLearner(nn.Module):
    """A CoOp-family prompt learner (``prompt``: :class:`CoOpPromptLearner`, or its subclass
    :class:`MaPLePromptLearner`) with LAMM's label tokens (``labels``) written into its suffix.

    The suffix ``[C, S, d_t]`` holds ``[fixed text] [class name] . [EOT] pad``; class ``c``'s learned tokens replace
    suffix positions ``offset .. offset + k_c - 1``. ``offset`` is the number of fixed-text tokens before the name
    (0 for CoOp; "of a" = 2 for MaPLe with N_CTX 2, "a photo of a"). The released MaPLe+LAMM slot is ``offset 0``
    with one token per class: the label replaces "of" and the full name stays (gaojingsheng/LAMM
    ``trainers/maple.py``, ``token_suffix``; docs/LAMM.md).
    """

    def __init__(self, prompt: CoOpPromptLearner, labels: LabelTable, offset: int = 0):
        super().__init__()
        self.prompt = prompt
        self.labels = labels
        self.offset = offset

    @property
    def original_is_frozen(self) -> bool:
        """True when the original-name branch has no trainable input (its features can be cached)."""
        return not any(p.requires_grad for p in self.prompt.parameters())

    def forward(self) -> TextPrompts:
        """Learned-label prompts ``[C, L, d_t]`` (plus MaPLe's deep text prompts)."""
        return self.prompt(self.labels.write(self.prompt.token_suffix, self.offset))

    def original(self) -> TextPrompts:
        """Original class-name prompts ``[C, L, d_t]`` (the code's ``forward_test``)."""
        return self.prompt()

    def vision(self) -> VisionPrompts:
        return self.prompt.vision_prompts() if isinstance(self.prompt, MaPLePromptLearner) else VisionPrompts()


def build_coop_learner(trainer: "LAMMTrainer", backbone, classnames: List[str], freeze_context: bool):
    """``clip`` (frozen hand-written context) and ``coop`` (learned context) bases."""
    n = trainer.node
    prompt = CoOpPromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT, n.CSC, n.CLASS_TOKEN_POSITION,
                               csc_with_init=n.CSC_WITH_INIT, cfg_node="TRAINER.LAMM")
    if freeze_context:
        if not n.CTX_INIT:
            raise ValueError('TRAINER.LAMM.BASE "clip" freezes the hand-written context: set TRAINER.LAMM.CTX_INIT '
                             '(e.g. "a photo of a"), or use BASE "coop" to learn a random context.')
        prompt.ctx.requires_grad_(False)
    return LAMMPromptLearner(prompt, trainer.build_label_table(backbone, classnames))


def build_maple_learner(trainer: "LAMMTrainer", backbone, classnames: List[str]):
    """``maple`` base: MaPLe's learner with the labels in place of the name (``MAPLE_LABEL_SLOT name``) or in the
    released slot of "of", one token per class, the name kept (``MAPLE_LABEL_SLOT released``)."""
    n = trainer.node
    backbone.require_vit("MaPLe+LAMM")
    check_depth("TRAINER.LAMM.PROMPT_DEPTH", n.PROMPT_DEPTH, min(backbone.text_layers, backbone.vision_layers))
    prompt = MaPLePromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT, n.PROMPT_DEPTH)
    if n.MAPLE_LABEL_SLOT == "released":
        logger.info('MaPLe+LAMM with the released label slot: "[SOS] ctx <M_c> a {class}." (one token per class)')
        return LAMMPromptLearner(prompt, trainer.build_label_table(backbone, classnames, max_tokens=1), offset=0)
    n_prefix = int(backbone.eot_index(backbone.tokenize(prompt.prompt_prefix))[0]) - 1
    return LAMMPromptLearner(prompt, trainer.build_label_table(backbone, classnames), offset=n_prefix - prompt.n_ctx)


@TRAINER_REGISTRY.register("LAMM")
class LAMMTrainer(PromptTrainer):
    CFG_NODE = "LAMM"
    # official fp16 (LAMM trainers/coop.py, maple.py PromptLearner): ctx and the label tokens token_classes in
    # clip_model.dtype, MaPLe's proj .half(); MaPLe's compound prompts and projections stay fp32 (cast at each block)
    OFFICIAL_FP32_PARAMS = ("prompt.compound_prompts_text", "prompt.compound_prompt_projections")
    FACTS = MethodFacts(
        protocol=ProtocolDefaults("vit_b16_ep50_ctxv1", reported_for={
            "coop_vit_b16_ep50_ctxv1": ("CoOp+LAMM",), "maple_vit_b16_c2_ep5_batch4_2ctx": ("MaPLe+LAMM",)}),
        toy_config="configs/trainers/LAMM/toy.yaml",
        released="trainers.released.lamm_released_state",
        paper="arXiv 2312.08212 (Gao et al., AAAI 2024)",
        official_code="gaojingsheng/LAMM trainers/coop.py:CoOp (--triplet-loss), trainers/maple.py:MaPLe",
        docs="docs/LAMM.md",
        official_configs={
            **official_configs("gaojingsheng/LAMM", "CoOp", "", (
                "rn101 rn101_ep50 rn50 rn50_ctxv1 rn50_ep100 rn50_ep50 rn50_ep50_ctxv1 rn50_val vit_b16 "
                "vit_b16_ep100 vit_b16_ep5 vit_b32 vit_b32_ep50").split(),
                why_not="CoOp's config shipped with the release; no released LAMM script runs it"),
            **official_configs("gaojingsheng/LAMM", "MaPLe", "", (
                "vit_b16_c2_ep5_batch1_2ctx", "vit_b16_c2_ep5_batch2_2ctx",
                "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
                why_not="MaPLe's config shipped with the release; no released LAMM script runs it"),
            "CoOp/vit_b16_ep50.yaml": OfficialConfig(
                "gaojingsheng/LAMM configs/trainers/CoOp/vit_b16_ep50.yaml",
                why_not="no released LAMM script runs it; the scripts run vit_b16_ep50_ctxv1"),
            "CoOp/vit_b16_ep50_ctxv1.yaml": OfficialConfig(  # scripts/lamm/*.sh and scripts/coop/*.sh
                "gaojingsheng/LAMM configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml", "LAMM/vit_b16_ep50_ctxv1"),
            "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml": OfficialConfig(  # scripts/maple/base_train_maple_lamm_all.sh
                "gaojingsheng/LAMM configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
                "LAMM/maple_vit_b16_c2_ep5_batch4_2ctx"),
        },
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.LAMM = CN()
        cfg.TRAINER.LAMM.BASE = "clip"  # clip (frozen "a photo of a": LAMM alone), coop (CoOp+LAMM), maple
        cfg.TRAINER.LAMM.N_CTX = 4  # context vectors (coop: overridden by CTX_INIT's word count; maple: first N)
        cfg.TRAINER.LAMM.CTX_INIT = "a photo of a"  # context phrase; "" = random N(0, 0.02) (coop, maple)
        cfg.TRAINER.LAMM.CSC = False  # class-specific context (coop)
        cfg.TRAINER.LAMM.CSC_WITH_INIT = "shared"  # CSC with CTX_INIT: shared (released, CSC ignored) or per_class
        cfg.TRAINER.LAMM.CLASS_TOKEN_POSITION = "end"  # end, middle or front (clip/coop; the code supports end)
        cfg.TRAINER.LAMM.PROMPT_DEPTH = 9  # maple: layers with prompts (MaPLe's default)
        cfg.TRAINER.LAMM.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.LAMM.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.LAMM.LABEL_TOKENS = "min_len"  # min_len (released code) or all (every name token, paper)
        cfg.TRAINER.LAMM.RANDOM_INIT = False  # label tokens from N(0, 0.02^2); the L_WC anchor is that draw
        cfg.TRAINER.LAMM.MAPLE_LABEL_SLOT = "released"  # maple: released ("of" slot, 1 token) or name (replace it)
        cfg.TRAINER.LAMM.WC_WEIGHT = 1.0  # λ_WC on sum (M - M0)^2 (1.0 = released few-shot scripts)
        cfg.TRAINER.LAMM.WC_PER_SHOT = False  # True: λ_WC = WC_WEIGHT / DATASET.NUM_SHOTS (1/shots)
        cfg.TRAINER.LAMM.COS_WEIGHT = 1.0  # λ_COS on mean (1 - cos(t, sg(t0)))
        cfg.TRAINER.LAMM.COS_MODE = "released"  # released (0 for a one-class batch) or standard (always)
        cfg.TRAINER.LAMM.KD_WEIGHT = 0.05  # λ_KD
        cfg.TRAINER.LAMM.KD_T = 2.0  # distillation temperature T
        cfg.TRAINER.LAMM.KD_MODE = "released"  # released (reversed, non-detached CE) or standard (KL, z0 detached)

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        n = cfg.TRAINER.LAMM
        choices = {"BASE": BASES, "LABEL_TOKENS": LABEL_TOKEN_MODES, "COS_MODE": LOSS_MODES,
                   "KD_MODE": LOSS_MODES, "MAPLE_LABEL_SLOT": ("released", "name")}
        for key, allowed in choices.items():
            if n[key] not in allowed:
                raise ValueError(f'TRAINER.LAMM.{key} is "{n[key]}"; choose one of {", ".join(allowed)}.')
        if n.WC_PER_SHOT and cfg.DATASET.NUM_SHOTS < 1:
            raise ValueError("TRAINER.LAMM.WC_PER_SHOT divides WC_WEIGHT by DATASET.NUM_SHOTS, which is "
                             f"{cfg.DATASET.NUM_SHOTS} (all data); set DATASET.NUM_SHOTS or WC_PER_SHOT False.")
        if n.KD_T <= 0:
            raise ValueError(f"TRAINER.LAMM.KD_T must be positive, got {n.KD_T}.")

    # ---- construction --------------------------------------------------------------------------------------
    def build_prompt_learner(self, backbone, classnames):
        self._frozen_original: Optional[torch.Tensor] = None
        self._pending_labels: Optional[Dict[str, torch.Tensor]] = None
        base = self.node.BASE
        logger.info("LAMM on %s: label tokens %s%s", base, self.node.LABEL_TOKENS,
                    ", random init" if self.node.RANDOM_INIT else "")
        if base == "maple":
            return build_maple_learner(self, backbone, classnames)
        return build_coop_learner(self, backbone, classnames, freeze_context=base == "clip")

    def build_label_table(self, backbone, classnames, max_tokens: Optional[int] = None) -> LabelTable:
        generator = torch.Generator().manual_seed(self.cfg.SEED) if self.cfg.SEED >= 0 else None
        return LabelTable(backbone, classnames, self.node.LABEL_TOKENS, self.node.RANDOM_INIT, generator,
                          max_tokens=max_tokens)

    @property
    def labels(self) -> LabelTable:
        return self.prompt_learner.labels

    @property
    def wc_weight(self) -> float:
        w = float(self.node.WC_WEIGHT)
        return w / self.cfg.DATASET.NUM_SHOTS if self.node.WC_PER_SHOT else w

    # ---- the forward pass ----------------------------------------------------------------------------------
    @property
    def FROZEN_IMAGE_FEATURES(self) -> bool:  # noqa: N802 - the PromptTrainer attribute, decided by the config here
        return self.node.BASE != "maple"  # on CLIP/CoOp the image path has no prompt; MaPLe's is learned

    def vision_prompts(self) -> VisionPrompts:
        return self.prompt_learner.vision()

    def encode(self, p: TextPrompts) -> torch.Tensor:
        return self.clip_model.encode_text_from_embeddings(p.embeddings, p.eot_index, p.deep)

    def original_text_features(self) -> torch.Tensor:
        """``t0 [C, D]`` alone (cached while the original branch has nothing trainable, as in "LAMM" alone)."""
        if not self.prompt_learner.original_is_frozen:
            return self.encode(self.prompt_learner.original())
        if self._frozen_original is None:
            with torch.no_grad():
                self._frozen_original = self.encode(self.prompt_learner.original())
        return self._frozen_original

    def text_feature_pair(self):
        """``(t, t0)``, each ``[C, D]``; one text-encoder pass over ``2C`` prompts when both need gradients."""
        if self.prompt_learner.original_is_frozen:
            return self.text_features(), self.original_text_features()
        learned, original = self.prompt_learner(), self.prompt_learner.original()
        n = learned.embeddings.shape[0]
        deep = None
        if learned.deep is not None:
            deep = [d if d is None or d.dim() == 2 else torch.cat([d, o]) for d, o in zip(learned.deep, original.deep)]
        both = TextPrompts(torch.cat([learned.embeddings, original.embeddings]),
                           torch.cat([learned.eot_index, original.eot_index]), deep)
        feats = self.encode(both)
        return feats[:n], feats[n:]

    def compute_loss(self, images, labels):
        """``CE + λ_WC L_WC + λ_COS L_COS + λ_KD L_KD`` (module doc); every term is logged unweighted."""
        n = self.node
        image_features = self.image_features(images)
        t, t0 = self.text_feature_pair()
        z = clip_logits(image_features, t, self.logit_scale, self.precision.head_dtype)
        z0 = clip_logits(image_features, t0, self.logit_scale, self.precision.head_dtype)
        terms = {
            "ce": F.cross_entropy(z, labels),
            "wc": self.labels.consolidation_loss(),
            "cos": feature_cosine_loss(t, t0, labels, n.COS_MODE),
            "kd": logit_distillation(z, z0, n.KD_T, n.KD_MODE),
        }
        loss = (terms["ce"] + self.wc_weight * terms["wc"] + n.COS_WEIGHT * terms["cos"]
                + n.KD_WEIGHT * terms["kd"])
        return loss, z, terms

    # ---- checkpoints: label tables keyed by class name ---------------------------------------------------
    def extra_checkpoint_state(self, name):
        if name != self.MODEL_NAME:
            return {}
        return {META_KEY: self.labels.checkpoint_meta()}

    def load_model_state_dict(self, name, state_dict):
        """Load everything but the label table, whose rows are matched by class name in
        :meth:`load_extra_checkpoint_state` (the saved class set may differ from this one)."""
        if name != self.MODEL_NAME:
            return super().load_model_state_dict(name, state_dict)
        state_dict, self._released_meta = lamm_released_state(state_dict, self.classnames, LABEL_PREFIX)
        state_dict = drop_class_buffers(state_dict)
        label_keys = [k for k in state_dict if k.startswith(LABEL_PREFIX)]
        self._pending_labels = {k[len(LABEL_PREFIX):]: state_dict[k] for k in label_keys}
        rest = {k: v for k, v in state_dict.items() if k not in label_keys}
        rest = matching_state(self.prompt_learner, rest, f'LAMM\'s "{name}" module', self._allow_partial_load(),
                              ignore_missing=lambda key: key.startswith(LABEL_PREFIX))
        self.prompt_learner.load_state_dict(rest, strict=False)
        self._frozen_original = None

    def load_extra_checkpoint_state(self, name, checkpoint):
        if name != self.MODEL_NAME:
            return
        saved, self._pending_labels = self._pending_labels or {}, None
        meta = checkpoint.get(META_KEY) or getattr(self, "_released_meta", None)
        if meta is None or "values" not in saved:
            raise ValueError(f"The {name} checkpoint holds no LAMM label table ({META_KEY} and "
                             f"{LABEL_PREFIX}values): was it saved by another trainer? Load it with its own "
                             "--trainer, or train LAMM first.")
        table = LabelTable.split_by_class(saved["values"], saved["anchor"], meta)
        missing = self.labels.load_by_class(table)
        known = len(self.classnames) - len(missing)
        logger.info("LAMM: learned label tokens loaded for %d of %d classes", known, len(self.classnames))
        if missing:
            shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
            logger.info("LAMM: no learned label for %d classes (%s): their prompts use the class-name tokens",
                        len(missing), shown)
