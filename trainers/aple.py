"""APLe: token-wise knowledge training and multi-modal token adaptation (Cao et al., arXiv 2401.06827).

Student: IVLP's independent deep prompts (:class:`trainers.ivlp.IVLPPromptLearner` for the text side, built with
vision depth 0, and :class:`trainers.deep_prompts.VisionPromptLearner` for the vision side; no coupling), on the
image-adapted input ``x~ = beta x + (1 - beta) F^-1(G_sigma . F(x))`` (:mod:`trainers.aple_filter`), in training
and test. Teacher: a frozen fp32 CLIP, as the draft's separate fp32 ``CLIP`` (the student's backbone itself when its
weights are fp32, else a second fp32 copy), zero-shot with the draft's per-dataset templates
(``TEACHER_TEMPLATES draft``; ``coop`` gives CoOp's ``CUSTOM_TEMPLATES``), text features once per class set, never
saved, on the RAW image; its logits ``z = s * cos(f_v(x), f_t(template_k))`` are computed once per batch in fp32,
outside autocast, without gradient.

Per mini-batch, ``TRAINER.APLE.STAGES`` runs these updates in order (default all three, as the draft's
``forward_backward``; docs/APLE.md):

    text    Stage I-a   fresh forward, L = CE + KD_WEIGHT_TEXT (0.5) * KD, step the text prompts only
    vision  Stage I-b   fresh forward, L = CE + KD_WEIGHT_VISION (0.4) * KD, step the vision prompts only
    joint   Stage II    fresh forward, L = CE, step both

    KD(s) = -T^2 * sum_k softmax(z / T)_k * log softmax(s / T)_k      (soft-target cross-entropy, T = KD_TEMPERATURE)

"Fresh forward" means each step sees the prompts the previous step produced. In the text and vision steps the
tower that is not stepped runs without autograd: its prompts receive no gradient either way, so the update is the
one of a full backward pass, at less cost.

Two optimisers, each over its own registered module, so both are checkpointed and resumed:
``text_prompt_learner`` (``ctx``, ``deep_text.*``) and ``vision_prompt_learner`` (``ctx``, ``deep.*``). Both
follow ``OPTIM``'s schedule; ``TEXT_LR_SCHEDULE False`` keeps the text prompts at a constant ``OPTIM.LR`` (no
warm-up, no cosine), as the draft code did by never giving its text optimiser the scheduler.

Choices the paper leaves open (details in docs/APLE.md, "Choices the paper leaves open"):
1. Filter: ``FILTER lowpass`` (default, the described Gaussian low-pass) or ``draft`` (the draft code's filter,
   double fftshift included: near-Nyquist pass + channel roll, in effect ``x~ ~= 0.9 x``); ``none`` switches the adapter off.
   ``BETA`` 0.9 and ``SIGMA`` 0.05 (the draft's hard-coded values; sigma may have been per dataset).
2. Stage scheduling: the three updates alternate within every iteration (the draft code), not as phases.
3. Text LR: scheduled by default (``TEXT_LR_SCHEDULE True``); the draft left it constant.
4. KD: soft-target cross-entropy to the teacher's distribution (same gradient as KL(p_zs || p)), T = 1,
   weights 0.5 / 0.4 as hard-coded in the draft.
5. The teacher sees the raw image ``x``, not ``x~`` (draft code).
6. Prompt length and depth: MaPLe's protocol (2 + 2 tokens, depth 9), unverified against the paper.

Ablations (``STAGES``, ``KD_WEIGHT_*``, ``FILTER``): joint only = ``STAGES ("joint",)`` (IVLP + adapter);
without knowledge training = ``KD_WEIGHT_TEXT 0 KD_WEIGHT_VISION 0`` (the sequential updates with CE only; the
teacher is then not run) or ``STAGES ("joint",)`` (Stage I skipped); without the adapter = ``FILTER none``.

Logged per batch (and averaged into metrics.jsonl): ``<stage>_ce``, ``<stage>_kd`` (stages with a KD weight > 0),
``<stage>_loss``; ``loss`` and ``acc`` are those of the last stage (its forward pass precedes its update).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.metrics import compute_accuracy
from engine.optim import build_optimizer

from .aple_filter import FILTERS, ImageAdapter
from .base import PromptTrainer, class_text_features, clip_logits
from .facts import MethodFacts, ProtocolDefaults
from .deep_prompts import VisionPromptLearner, check_depth
from .ivlp import IVLPPromptLearner
from .prompt_types import VisionPrompts
from .templates import dataset_template

logger = logging.getLogger(__name__)

STAGE_NAMES = ("text", "vision", "joint")
TEACHER_TEMPLATE_SETS = {"draft": "aple_draft", "coop": "coop"}  # TRAINER.APLE.TEACHER_TEMPLATES -> templates.py


def soft_target_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                              temperature: float = 1.0) -> torch.Tensor:
    """``-T^2 * mean_b sum_k softmax(z_b / T)_k * log softmax(s_b / T)_k`` for logits ``[B, C]`` (the draft's
    ``ProGradLoss`` KD term); the teacher side carries no gradient."""
    target = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(target * log_p).sum(dim=-1).mean() * temperature ** 2


@dataclass(frozen=True)
class Stage:
    """One update of the per-batch sequence: which towers are trained and the weight of the KD term."""

    name: str
    train_text: bool
    train_vision: bool
    kd_weight: float


@TRAINER_REGISTRY.register("APLe")
class APLeTrainer(PromptTrainer):
    CFG_NODE = "APLE"
    MODEL_NAME = "text_prompt_learner"
    VISION_NAME = "vision_prompt_learner"
    NEEDS_VIT = True
    # no official code: under the official fp16 reading its IVLP prompts take IVLP's dtypes (ctx fp16, deep text
    # prompts fp32; the vision learner below stays fp32, as IVLP's VPT prompts)
    OFFICIAL_FP32_PARAMS = ("deep_text", "vision")
    FACTS = MethodFacts(  # no official code or configs are released (docs page)
        protocol=ProtocolDefaults("vit_b16_c2_ep5_batch4_2+2ctx",
                                  transfer="vit_b16_c2_ep2_batch4_2+2ctx_cross_datasets"),
        toy_config="configs/trainers/APLe/toy.yaml",
        tiny_opts=("TRAINER.APLE.PROMPT_DEPTH_TEXT", "3", "TRAINER.APLE.PROMPT_DEPTH_VISION", "3"),
        paper="arXiv 2401.06827 (Cao et al.)",
        docs="docs/APLE.md",
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.APLE = CN()
        cfg.TRAINER.APLE.N_CTX_TEXT = 2  # text context tokens per block
        cfg.TRAINER.APLE.N_CTX_VISION = 2  # vision prompt tokens per block
        cfg.TRAINER.APLE.PROMPT_DEPTH_TEXT = 9  # text blocks 0..J-1 hold prompts
        cfg.TRAINER.APLE.PROMPT_DEPTH_VISION = 9  # vision blocks 0..J-1 hold prompts
        cfg.TRAINER.APLE.CTX_INIT = "a photo of a"  # first N_CTX_TEXT tokens initialise ctx; the rest stays fixed text
        cfg.TRAINER.APLE.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.APLE.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.APLE.STAGES = ("text", "vision", "joint")  # per-batch updates, in order (see the docstring)
        cfg.TRAINER.APLE.KD_WEIGHT_TEXT = 0.5  # weight of KD in the text step (draft: 0.5)
        cfg.TRAINER.APLE.KD_WEIGHT_VISION = 0.4  # weight of KD in the vision step (draft: 0.4)
        cfg.TRAINER.APLE.KD_TEMPERATURE = 1.0  # T of the soft-target cross-entropy (draft: 1)
        cfg.TRAINER.APLE.TEXT_LR_SCHEDULE = True  # False: text prompts at constant OPTIM.LR, as in the draft code
        cfg.TRAINER.APLE.FILTER = "lowpass"  # image adapter: lowpass (described), draft (the draft's code) or none
        cfg.TRAINER.APLE.BETA = 0.9  # fusion weight of the raw image: x~ = BETA x + (1 - BETA) filtered(x)
        cfg.TRAINER.APLE.SIGMA = 0.05  # Gaussian width in cycles per pixel (fftfreq units)
        cfg.TRAINER.APLE.TEACHER_TEMPLATES = "draft"  # teacher prompts: draft (the draft's per-dataset set) or coop

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        n = cfg.TRAINER.APLE
        stages = list(n.STAGES)
        unknown = [s for s in stages if s not in STAGE_NAMES]
        if not stages or unknown or len(set(stages)) != len(stages):
            raise ValueError(f"TRAINER.APLE.STAGES is {tuple(n.STAGES)}; give a non-empty sequence of distinct "
                             f"stages from {STAGE_NAMES}, e.g. ('text', 'vision', 'joint') or ('joint',).")
        for key in ("N_CTX_TEXT", "N_CTX_VISION", "PROMPT_DEPTH_TEXT", "PROMPT_DEPTH_VISION"):
            if n[key] < 1:
                raise ValueError(f"TRAINER.APLE.{key} is {n[key]}; APLe prompts both towers, so it must be >= 1.")
        for key in ("KD_WEIGHT_TEXT", "KD_WEIGHT_VISION"):
            if n[key] < 0:
                raise ValueError(f"TRAINER.APLE.{key} is {n[key]}; a loss weight must be >= 0 (0 = CE only).")
        if n.KD_TEMPERATURE <= 0:
            raise ValueError(f"TRAINER.APLE.KD_TEMPERATURE is {n.KD_TEMPERATURE}; it must be > 0.")
        if n.FILTER not in FILTERS:
            raise ValueError(f'TRAINER.APLE.FILTER is "{n.FILTER}"; choose one of {", ".join(FILTERS)}.')
        ImageAdapter(n.FILTER, n.BETA, n.SIGMA)  # checks BETA and SIGMA with a message naming the key
        if n.TEACHER_TEMPLATES not in TEACHER_TEMPLATE_SETS:
            raise ValueError(f'TRAINER.APLE.TEACHER_TEMPLATES is "{n.TEACHER_TEMPLATES}"; choose one of '
                             f'{", ".join(TEACHER_TEMPLATE_SETS)}.')

    # ---- construction --------------------------------------------------------------------------------------
    def build_prompt_learner(self, backbone, classnames):
        """The text side: IVLP's learner without vision prompts (``ctx [n_t, d_t]`` + deep text prompts)."""
        n = self.node
        check_depth("TRAINER.APLE.PROMPT_DEPTH_TEXT", n.PROMPT_DEPTH_TEXT, backbone.text_layers)
        check_depth("TRAINER.APLE.PROMPT_DEPTH_VISION", n.PROMPT_DEPTH_VISION, backbone.vision_layers)
        return IVLPPromptLearner(backbone, classnames, n.N_CTX_TEXT, n.CTX_INIT, n.PROMPT_DEPTH_TEXT,
                                 n_ctx_vision=0, depth_vision=0)

    def uses_teacher(self) -> bool:
        """True when some stage has a KD term (otherwise the teacher is neither built nor run)."""
        n = self.node
        weights = {"text": n.KD_WEIGHT_TEXT, "vision": n.KD_WEIGHT_VISION, "joint": 0.0}
        return any(weights[s] > 0 for s in n.STAGES)

    def prepare_backbone(self, backbone):
        """Keeps an fp32 copy of the loaded weights as the teacher before the student's backbone is cast to
        ``PREC`` (see :meth:`build_teacher`)."""
        fp32 = self.uses_teacher() and self.precision.backbone_dtype != torch.float32
        self._teacher_fp32 = copy.deepcopy(backbone).float().to(self.device).eval() if fp32 else None
        return super().prepare_backbone(backbone)

    def build_model(self):
        super().build_model()
        n = self.node
        # Built after the text learner, so a seed gives IVLP's initial prompts (same draw order).
        self.vision_learner = VisionPromptLearner(n.N_CTX_VISION, self.clip_model.vision_width,
                                                  n.PROMPT_DEPTH_VISION).float().to(self.device)
        self.register_trainable(self.VISION_NAME, self.vision_learner)
        self.adapter = ImageAdapter(n.FILTER, n.BETA, n.SIGMA)
        self.stages = self.build_stages()
        self._teacher_text: Dict[Tuple[str, ...], torch.Tensor] = {}
        self.teacher_clip = self.build_teacher() if self.uses_teacher() else None
        logger.info("APLe stages per batch: %s; adapter %s; text LR %s; vision trainable parameters: %s",
                    ", ".join(f"{s.name} (KD {s.kd_weight:g})" for s in self.stages), self.adapter,
                    "scheduled" if n.TEXT_LR_SCHEDULE else f"constant {self.cfg.OPTIM.LR:g}",
                    f"{sum(p.numel() for p in self.vision_learner.parameters()):,}")

    def register_trainable(self, name, module, param_groups=None):
        """As :class:`PromptTrainer`'s; with ``TEXT_LR_SCHEDULE False`` the text optimiser gets no scheduler."""
        if name == self.MODEL_NAME and not self.node.TEXT_LR_SCHEDULE:
            optim = build_optimizer(module, self.cfg.OPTIM, param_groups)
            self.register_model(name, module, optim, None)
            return optim, None
        return super().register_trainable(name, module, param_groups)

    def build_stages(self) -> List[Stage]:
        n = self.node
        table = {"text": Stage("text", True, False, float(n.KD_WEIGHT_TEXT)),
                 "vision": Stage("vision", False, True, float(n.KD_WEIGHT_VISION)),
                 "joint": Stage("joint", True, True, 0.0)}
        return [table[s] for s in n.STAGES]

    def stage_modules(self, stage: Stage) -> List[str]:
        """Registered names whose optimisers a stage steps."""
        return [name for name, on in ((self.MODEL_NAME, stage.train_text), (self.VISION_NAME, stage.train_vision))
                if on]

    # ---- the student -------------------------------------------------------------------------------------------
    def vision_prompts(self) -> VisionPrompts:
        return self.vision_learner()

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Student image features ``[B, D]`` of the adapted images ``x~`` with the vision prompts."""
        return super().image_features(self.adapter(images))

    def stage_logits(self, images: torch.Tensor, stage: Stage) -> torch.Tensor:
        """``[B, C]`` student logits; the tower a stage does not train runs without autograd."""
        with torch.set_grad_enabled(stage.train_text):
            text = self.text_features()
        with torch.set_grad_enabled(stage.train_vision):
            image = self.image_features(images)
        return clip_logits(image, text, self.logit_scale)

    # ---- the teacher -------------------------------------------------------------------------------------------
    def build_teacher(self):
        """The frozen fp32 teacher CLIP, as the draft's separate fp32 ``CLIP``. When the student's frozen backbone
        holds fp32 weights (``PREC fp32`` or ``amp``, and every run on CPU) those same weights are the teacher;
        under ``fp16``/``bf16`` it is the fp32 copy taken at load time, before the cast."""
        if self._teacher_fp32 is None:
            return self.clip_model
        logger.info("APLe teacher: a separate fp32 CLIP (the student's backbone is %s)", self.precision.prec)
        return self._teacher_fp32

    @property
    def teacher_template(self) -> str:
        """The teacher's template for the dataset (``TEACHER_TEMPLATES``: the draft's set or CoOp's); a
        ``DATASET.TEMPLATE`` set in the config (your own data) takes precedence."""
        return self.cfg.DATASET.TEMPLATE or dataset_template(self.cfg.DATASET.NAME, TEACHER_TEMPLATE_SETS[self.node.TEACHER_TEMPLATES])

    def teacher_text_features(self) -> torch.Tensor:
        """The teacher's class text features ``[C, D]`` (fp32), once per class set, never saved."""
        key = tuple(self.classnames)
        if key not in self._teacher_text:
            self._teacher_text[key] = class_text_features(self.teacher_clip, self.classnames, [self.teacher_template])
        return self._teacher_text[key]

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Zero-shot fp32 CLIP logits ``[B, C]`` on the raw images, with the teacher's template."""
        image = self.teacher_clip.encode_image(images.float())
        return clip_logits(image, self.teacher_text_features(), self.teacher_clip.logit_scale.float())

    # ---- training ------------------------------------------------------------------------------------------
    def stage_loss(self, logits: torch.Tensor, labels: torch.Tensor, stage: Stage,
                   teacher: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``(CE + w * KD, {"ce": .., "kd": ..})``; KD only when the stage's weight is > 0."""
        ce = F.cross_entropy(logits, labels)
        if stage.kd_weight <= 0:
            return ce, {"ce": ce}
        kd = soft_target_cross_entropy(logits, teacher, self.node.KD_TEMPERATURE)
        return ce + stage.kd_weight * kd, {"ce": ce, "kd": kd}

    def forward_backward(self, batch):
        images, labels = self.parse_batch_train(batch)
        teacher = None
        if self.teacher_clip is not None:
            teacher = self.teacher_logits(images).float()  # fp32, outside autocast, as the draft's fp32 CLIP
        summary = {}
        for stage in self.stages:
            with self.precision.autocast():
                logits = self.stage_logits(images, stage)
                loss, terms = self.stage_loss(logits, labels, stage, teacher)
            self.backward_and_update(loss, names=self.stage_modules(stage))
            summary.update({f"{stage.name}_{k}": float(v.detach()) for k, v in terms.items()})
            summary[f"{stage.name}_loss"] = loss.item()
        summary["loss"] = loss.item()
        summary["acc"] = compute_accuracy(logits, labels)[0].item()
        return summary

    def get_current_lr(self, names=None) -> float:
        """The vision optimiser's LR (it always follows the schedule); ``epoch_metrics`` logs both."""
        return super().get_current_lr(names or self.VISION_NAME)

    def epoch_metrics(self) -> dict:
        """Both optimisers' LRs of the epoch just run (the text one differs with ``TEXT_LR_SCHEDULE False``)."""
        return {"lr_text": self._epoch_lr_text, "lr_vision": self._epoch_lr}

    def run_epoch(self):
        self._epoch_lr_text = super().get_current_lr(self.MODEL_NAME)
        super().run_epoch()
