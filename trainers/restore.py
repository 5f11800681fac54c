"""RESTORE: feature-shift consistency and the surgery block on multi-modal prompts (Yang et al., arXiv 2403.06136).

Built on MaPLe's coupled deep prompts (:class:`trainers.maple.MaPLePromptLearner`: N_CTX 2, depth J = 9,
"a photo of a"), or on IVLP's independent ones (``BASE ivlp``). The released trainer is ``MaPLe_FSA`` in
``Yaphabates/RESTORE_`` (``trainers/maple_fsa.py``; docs/RESTORE.md); its behaviour is the default here:

    logits = s * cos(S_v(f_v(x)), S_t(f_t(t_c)))        S_m(f) = f + r_m * FFN_m(LN_m(f))   (restore_surgery)
    L      = CE(logits, y) + lambda * L_FSC               lambda = FS_LOSS_R (1; 0.5 on DTD)
    L_FSC  = sum_{l=1}^{J-1} (s^text_l - s^vision_l)^2                                      (feature_shift)

- ``SHIFT gram`` (released): ``s^m_l = ||P^T P||_F / ||P0^T P0||_F`` of the deep prompt of block ``l``
  (``P^text_l = T_l``, ``P^vision_l = F_l(T_l)`` under MaPLe), ``P0`` = the prompts at the first training forward.
  Unlike the released code, the ``P0`` norms are saved (registered module ``fsc_reference``), so a resumed run
  divides by the same constants instead of recapturing them.
- ``SHIFT feature`` (the paper's definition): ``s^m_l`` = relative change of block ``l``'s output tokens against the
  frozen, prompt-free CLIP on the same inputs (``trainers.feature_shift``), over the same blocks ``1..J-1``. The
  frozen text outputs are cached once per class set; images need one extra pass without gradient.
- Surgery ratios start at ``TEXT_CALIB_R`` / ``VIS_CALIB_R`` (per dataset: ``configs/trainers/RESTORE/datasets``)
  and are updated once after the 0-based epoch ``CALIB_EPOCH`` (``-1``: ``MAX_EPOCH // 3``, released):
  ``r_t += TEXT_CALIB_COEF * S_t`` (0.02), ``r_v += VIS_CALIB_COEF * S_v`` (0.005), ``S_m`` the mean absolute Gram
  norm of the deep prompts (in both SHIFT modes). The update happens before that epoch's checkpoint is written,
  so the checkpoint, a resumed run and the evaluation all see the updated ratios (the released loop saved first,
  then updated; training is the same).

Registered modules (each saved under ``<output>/<name>/``): ``MultiModalPromptLearner`` (the prompts, as MaPLe),
``surgery`` (adapters + ratios) and ``fsc_reference`` (the ``P0`` Gram norms; nothing to optimise). Trainable
parameters with ViT-B/16, N_CTX 2, J 9: MaPLe's 3,555,072 + 2 x 2,100,736 = 7,756,544.
"""
from __future__ import annotations

import logging
import os
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.utils import latest_checkpoint
from engine.utils.dassl_checkpoint import load_checkpoint_or_dassl

from .base import clip_logits
from .deep_prompts import check_depth
from .feature_shift import (SHIFT_MEASURES, FrozenReference, GramReference, deep_prompt_layers, fsc_loss, gram_norms,
                            per_layer_feature_shift, relative_gram_shift, text_content_mask)
from .ivlp import IVLPPromptLearner
from .maple import MaPLe, MaPLePromptLearner
from .prompt_types import TextPrompts, VisionPrompts
from .facts import MethodFacts, OfficialConfig, ProtocolDefaults
from .released import is_released_restore, restore_reference_state, restore_surgery_state
from .restore_surgery import SurgeryBlock

logger = logging.getLogger(__name__)

BASES = ("maple", "ivlp")


def deep_prompts(prompts) -> List[torch.Tensor]:
    """The deep prompts ``[P_1, ..., P_{J-1}]`` of a :class:`TextPrompts` / :class:`VisionPrompts`."""
    return [p for _, p in deep_prompt_layers(prompts.deep)]


def mean_gram_norm(prompts: Sequence[torch.Tensor]) -> float:
    """``S = mean_l ||P_l^T P_l||_F`` (0 without deep prompts), the released ``get_current_shift``."""
    with torch.no_grad():
        norms = gram_norms(prompts)
    return float(norms.mean()) if norms.numel() else 0.0


class GramShift:
    """Released measure: ``s_l = g(P_l) / g(P_l^(0))``; the reference is captured at the first call."""

    needs_hidden = False

    def __init__(self, reference: GramReference):
        self.reference = reference

    def __call__(self, text: TextPrompts, vision: VisionPrompts, text_hidden, image_hidden, images):
        pt, pv = deep_prompts(text), deep_prompts(vision)
        if not bool(self.reference.captured):
            self.reference.capture(pt, pv)
        return relative_gram_shift(pt, self.reference.text), relative_gram_shift(pv, self.reference.vision)


class FeatureShift:
    """Paper's measure: relative shift of block ``l``'s output tokens against the frozen CLIP, ``l in layers``.

    ``learner`` supplies the class prompts' token ids (``tokenized_prompts``) and the number of learned slots after
    SOT (``n_ctx``), which are left out of the text comparison.
    """

    needs_hidden = True

    def __init__(self, frozen: FrozenReference, learner, layers: Sequence[int]):
        self.frozen = frozen
        self.learner = learner
        self.layers = list(layers)

    def __call__(self, text: TextPrompts, vision: VisionPrompts, text_hidden, image_hidden, images):
        ref_text, eot = self.frozen.text(self.learner.tokenized_prompts)
        mask = text_content_mask(eot, self.learner.n_ctx, ref_text[0].shape[1])
        _, ref_image = self.frozen.image(images)
        return (per_layer_feature_shift(text_hidden, ref_text, self.layers, mask),
                per_layer_feature_shift(image_hidden, ref_image, self.layers))


@TRAINER_REGISTRY.register("RESTORE")
class RestoreTrainer(MaPLe):
    CFG_NODE = "RESTORE"
    # RESTORE's per-dataset ratios apply to its released configs, not to the IVLP+FSC ablation (see its YAML), and
    # not to few-shot runs: the only released few-shot script passes no ratio flags (0.1 / 0.1, lambda 1;
    # docs/RESTORE.md).
    FACTS = MethodFacts(
        protocol=ProtocolDefaults(
            "vit_b16_c2_ep10_batch4_2ctx", transfer="vit_b16_c2_ep2_batch4_2ctx_cross_datasets",
            dataset_configs=("vit_b16_c2_ep10_batch4_2ctx", "vit_b16_c2_ep10_batch4_2ctx_feature",
                             "vit_b16_c2_ep10_batch4_2ctx_promptdepth12", "vit_b16_c2_ep2_batch4_2ctx_cross_datasets"),
            fewshot_dataset_values=False),
        toy_config="configs/trainers/RESTORE/toy.yaml",
        tiny_opts=("TRAINER.RESTORE.PROMPT_DEPTH", "3"),
        released="trainers.released.restore_surgery_state",
        paper="arXiv 2403.06136",
        official_code="Yaphabates/RESTORE_ trainers/maple_fsa.py:MaPLe_FSA",
        docs="docs/RESTORE.md",
        official_configs={f"MaPLe_FSA/{name}.yaml": OfficialConfig(
            f"Yaphabates/RESTORE_ configs/trainers/MaPLe_FSA/{name}.yaml", f"RESTORE/{ours}") for name, ours in (
                ("vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep10_batch4_2ctx"),  # it sets MAX_EPOCH 10 (docs page)
                ("vit_b16_c2_ep10_batch4_2ctx_promptdepth12", "vit_b16_c2_ep10_batch4_2ctx_promptdepth12"),
                ("vit_b16_c2_ep5_batch4_2ctx_cross_datasets", "vit_b16_c2_ep2_batch4_2ctx_cross_datasets"))},
    )
    SURGERY = "surgery"
    REFERENCE = "fsc_reference"

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.RESTORE = CN()
        cfg.TRAINER.RESTORE.N_CTX = 2  # learned context vectors per block (text; vision through the coupling)
        cfg.TRAINER.RESTORE.CTX_INIT = "a photo of a"  # first N_CTX tokens initialise ctx; the rest stays fixed text
        cfg.TRAINER.RESTORE.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.RESTORE.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.RESTORE.PROMPT_DEPTH = 9  # J: blocks 0..J-1 of both towers hold prompts
        cfg.TRAINER.RESTORE.BASE = "maple"  # maple (coupled prompts, released) or ivlp (independent: IVLP+FSC)
        cfg.TRAINER.RESTORE.SHIFT = "gram"  # gram (released prompt Gram-norm proxy) or feature (paper's definition)
        cfg.TRAINER.RESTORE.FS_LOSS_R = 1.0  # lambda, weight of L_FSC (released: 1; 0.5 on DTD)
        cfg.TRAINER.RESTORE.TEXT_CALIB_R = 0.1  # initial text surgery ratio r_t (released train.py default)
        cfg.TRAINER.RESTORE.VIS_CALIB_R = 0.1  # initial vision surgery ratio r_v (released train.py default)
        cfg.TRAINER.RESTORE.TEXT_CALIB_COEF = 0.02  # r_t += TEXT_CALIB_COEF * mean text Gram norm, once
        cfg.TRAINER.RESTORE.VIS_CALIB_COEF = 0.005  # r_v += VIS_CALIB_COEF * mean vision Gram norm, once
        cfg.TRAINER.RESTORE.CALIB_EPOCH = -1  # 0-based epoch after which the ratios update; -1 = MAX_EPOCH // 3

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        n = cfg.TRAINER.RESTORE
        for key, allowed in (("BASE", BASES), ("SHIFT", SHIFT_MEASURES)):
            if n[key] not in allowed:
                raise ValueError(f'TRAINER.RESTORE.{key} is "{n[key]}"; choose one of {", ".join(allowed)}.')
        if n.FS_LOSS_R < 0:
            raise ValueError(f"TRAINER.RESTORE.FS_LOSS_R is {n.FS_LOSS_R}; the loss weight must be >= 0.")

    # ---- construction --------------------------------------------------------------------------------------
    def build_prompt_learner(self, backbone, classnames):
        n = self.node
        backbone.require_vit("RESTORE")
        check_depth("TRAINER.RESTORE.PROMPT_DEPTH", n.PROMPT_DEPTH, min(backbone.text_layers, backbone.vision_layers))
        if n.BASE == "ivlp":
            return IVLPPromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT, n.PROMPT_DEPTH, n.N_CTX,
                                     n.PROMPT_DEPTH)
        return MaPLePromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT, n.PROMPT_DEPTH)

    def build_model(self):
        super().build_model()
        n = self.node
        # official fp16: Feature_Calibrator().half() (maple_fsa.py CustomCLIP.__init__); the ratios stay fp32
        self.surgery = self.precision.prepare_learner(
            SurgeryBlock(self.clip_model.embed_dim, n.TEXT_CALIB_R, n.VIS_CALIB_R), buffers=False)
        self.register_trainable(self.SURGERY, self.surgery)
        n_deep = n.PROMPT_DEPTH - 1
        self.fsc_reference = GramReference(n_deep, n_deep).to(self.device)
        self.register_model(self.REFERENCE, self.fsc_reference)
        if n.SHIFT == "gram":
            self.shift = GramShift(self.fsc_reference)
        else:
            self.shift = FeatureShift(FrozenReference(self.clip_model), self.prompt_learner, range(1, n.PROMPT_DEPTH))
        n_params = sum(p.numel() for m in (self.prompt_learner, self.surgery) for p in m.parameters()
                       if p.requires_grad)
        logger.info("RESTORE on %s, SHIFT %s, lambda %g; ratios r_t %g, r_v %g; trainable parameters in all: %s",
                    n.BASE, n.SHIFT, n.FS_LOSS_R, n.TEXT_CALIB_R, n.VIS_CALIB_R, f"{n_params:,}")

    # ---- official released checkpoints ----------------------------------------------------------------------
    def load_model(self, directory, epoch=None):
        """Load trained modules; a released ``MaPLe_FSA`` run (only a ``MultiModalPromptLearner`` folder, holding
        the whole ``CustomCLIP``) is split over the prompt learner, the surgery block and the FSC reference
        (:mod:`trainers.released`)."""
        folder = os.path.join(directory or "", self.MODEL_NAME)
        if not directory or os.path.isdir(os.path.join(directory, self.SURGERY)) or not os.path.isdir(folder):
            return super().load_model(directory, epoch)
        best = os.path.join(folder, "model-best.pth.tar")
        path = (os.path.join(folder, f"model.pth.tar-{epoch}") if epoch is not None
                else best if os.path.isfile(best) else latest_checkpoint(folder))
        if path is None or not os.path.isfile(path):
            raise FileNotFoundError(f"No checkpoint at {path or folder}; check --model-dir and --load-epoch.")
        state = load_checkpoint_or_dassl(path, map_location=self.device)["state_dict"]
        if not is_released_restore(state):
            raise FileNotFoundError(f"{directory} has no {self.SURGERY}/ folder and {path} holds no RESTORE adapters "
                                    "(text_adapter.*): it is not a RESTORE run.")
        logger.info("Loading a released MaPLe_FSA checkpoint from %s", path)
        self.load_model_state_dict(self.MODEL_NAME, state)
        self.load_model_state_dict(self.SURGERY, restore_surgery_state(state))
        reference = restore_reference_state(state)
        if reference is not None:
            self.load_model_state_dict(self.REFERENCE, reference)

    # ---- the forward pass ----------------------------------------------------------------------------------
    def text_features(self) -> torch.Tensor:
        """Class text features after the surgery block, ``[C, D]``."""
        return self.surgery.calibrate_text(super().text_features())

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Image features after the surgery block, ``[B, D]``."""
        return self.surgery.calibrate_vision(super().image_features(images))

    def encode(self, text: TextPrompts, vision: VisionPrompts, images: torch.Tensor, return_hidden: bool):
        """``(text features [C, D], image features [B, D], text hidden, image hidden)`` before the surgery block;
        the hidden lists (each block's output) are ``None`` unless ``return_hidden``."""
        bb = self.clip_model
        t = bb.encode_text_from_embeddings(text.embeddings, text.eot_index, text.deep, return_hidden=return_hidden)
        v = bb.encode_image(images, vision.prompts, vision.deep, return_hidden=return_hidden)
        if return_hidden:
            return t[0], v[0], t[1], v[1]
        return t, v, None, None

    def feature_shifts(self, images: torch.Tensor, text: Optional[TextPrompts] = None,
                       vision: Optional[VisionPrompts] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(s_text [J-1], s_vision [J-1])`` of the configured SHIFT measure for ``images`` and the given prompts
        (default: the learned ones)."""
        text = text if text is not None else self.text_prompts()
        vision = vision if vision is not None else self.vision_prompts()
        _, _, t_hidden, v_hidden = self.encode(text, vision, images, self.shift.needs_hidden)
        return self.shift(text, vision, t_hidden, v_hidden, images)

    def compute_loss(self, images, labels):
        text, vision = self.text_prompts(), self.vision_prompts()
        t, v, t_hidden, v_hidden = self.encode(text, vision, images, self.shift.needs_hidden)
        s_text, s_vision = self.shift(text, vision, t_hidden, v_hidden, images)
        logits = clip_logits(self.surgery.calibrate_vision(v), self.surgery.calibrate_text(t), self.logit_scale,
                             self.precision.head_dtype)
        ce = F.cross_entropy(logits, labels)
        fsc = fsc_loss(s_text, s_vision)
        return ce + self.node.FS_LOSS_R * fsc, logits, {"ce": ce, "fsc": fsc}

    # ---- the one-time ratio update -------------------------------------------------------------------------
    @property
    def calibration_epoch(self) -> int:
        """The 0-based epoch after which the surgery ratios are updated (released: ``MAX_EPOCH // 3``)."""
        e = self.node.CALIB_EPOCH
        return e if e >= 0 else self.max_epoch // 3

    def mean_gram_norms(self) -> Tuple[float, float]:
        """``(S_text, S_vision)``: mean absolute Gram norms of the current deep prompts."""
        with torch.no_grad():
            return (mean_gram_norm(deep_prompts(self.text_prompts())),
                    mean_gram_norm(deep_prompts(self.vision_prompts())))

    def update_ratios(self) -> bool:
        n = self.node
        s_text, s_vision = self.mean_gram_norms()
        changed = self.surgery.update_ratios(s_text, s_vision, n.TEXT_CALIB_COEF, n.VIS_CALIB_COEF)
        if changed:
            logger.info("Surgery ratios updated after epoch %d: r_t = %.6f (S_t %.4f), r_v = %.6f (S_v %.4f)",
                        self.epoch + 1, float(self.surgery.text_ratio), s_text, float(self.surgery.vision_ratio),
                        s_vision)
        return changed

    def after_epoch(self):
        if self.epoch == self.calibration_epoch:
            self.update_ratios()
        super().after_epoch()

    def epoch_metrics(self) -> dict:
        s_text, s_vision = self.mean_gram_norms()
        return {"text_ratio": float(self.surgery.text_ratio), "vision_ratio": float(self.surgery.vision_ratio),
                "text_gram": s_text, "vision_gram": s_vision}
