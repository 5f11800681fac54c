"""``PromptTrainer``: everything CoOp-family trainers share, so a method file states only what is new.

    build_model:  backbone = clip.load(MODEL.BACKBONE.NAME)           frozen, precision per PREC
                  prompt_learner = self.build_prompt_learner(...)    trainable, registered; fp32, or under the
                                   official fp16 reading fp16 except OFFICIAL_FP32_PARAMS (trainers/precision.py)
    logits:       image_features(images) [B, D], text_features() [C, D] -> logit_scale * norm(img) @ norm(txt).T
    training:     compute_loss(images, labels) -> (loss, logits, {term: value}); default cross-entropy
    evaluation:   text features that do not depend on the image are computed once per evaluation

A subclass sets ``CFG_NODE`` (its ``TRAINER.<NODE>`` config node) and implements ``build_prompt_learner``; it
overrides ``text_prompts``/``vision_prompts`` or ``logits`` when its prompts are not CoOp's, and
``compute_loss`` to add loss terms. Frozen zero-shot text features for the current class set are available from
``zeroshot_text_features`` (computed once, never saved). A registered subclass declares its facts as ``FACTS``
(``trainers/facts.py``; ``docs/ADDING_A_METHOD.md``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import clip
from engine import TrainerX
from engine.metrics import compute_accuracy
from engine.optim import build_lr_scheduler, build_optimizer
from engine.utils import load_pretrained_weights

from .precision import Precision, check_precision
from .prompt_types import TextPrompts, VisionPrompts
from .released import drop_class_buffers
from .templates import config_template

REPO_ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger(__name__)


def clip_logits(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """CLIP's head: ``(s * norm(f_img)) @ norm(f_txt).T`` in ``dtype`` (fp32; fp16 in the official fp16 reading).

    ``image_features [B, D]`` with ``text_features [C, D]`` -> ``[B, C]``; per-image text features ``[B, C, D]``
    (CoCoOp) -> ``[B, C]`` as well. The official order (CoOp ``CustomCLIP.forward``: ``logit_scale * image_features
    @ text_features.t()``): the fp32 scale ``s`` multiplies the normalised image features, whose dtype it keeps.
    """
    img = F.normalize(image_features.to(dtype), dim=-1)
    txt = F.normalize(text_features.to(dtype), dim=-1)
    if txt.dim() == 3:
        return torch.einsum("bd,bcd->bc", logit_scale * img, txt)
    return logit_scale * img @ txt.t()


@torch.no_grad()
def class_text_features(backbone: clip.CLIPBackbone, classnames: Sequence[str], templates: Sequence[str],
                        chunk: int = 1000) -> torch.Tensor:
    """Frozen CLIP text features ``[C, D]`` (fp32, L2-normalised) of ``classnames`` under ``templates``.

    With several templates, the normalised features are averaged over templates and renormalised (CLIP's
    prompt ensembling). Text is encoded in chunks of ``chunk`` prompts to bound memory.
    """
    names = [c.replace("_", " ") for c in classnames]
    feats = []
    for template in templates:
        texts = [template.format(c) for c in names]
        parts = [backbone.encode_text(backbone.tokenize(texts[i:i + chunk])).float() for i in range(0, len(texts), chunk)]
        feats.append(F.normalize(torch.cat(parts), dim=-1))
    return F.normalize(torch.stack(feats).mean(0), dim=-1)


class PromptTrainer(TrainerX):
    CFG_NODE = ""  # the TRAINER.<NODE> config node of the subclass
    MODEL_NAME = "prompt_learner"  # the registered name (Dassl layout: <output>/<name>/model.pth.tar-<E>)
    NEEDS_VIT = False  # True for trainers that prompt the vision transformer
    # Learner parameters (name prefixes) that the official code leaves fp32 under PREC fp16; all others are fp16
    # there (created in clip_model.dtype or cast with .half()). Read only under the official fp16 reading.
    OFFICIAL_FP32_PARAMS: Tuple[str, ...] = ()

    @property
    def node(self):
        return self.cfg.TRAINER[self.CFG_NODE]

    def check_cfg(self, cfg):
        node = cfg.TRAINER[self.CFG_NODE]
        check_precision(f"TRAINER.{self.CFG_NODE}", node.PREC, node.MASTER_WEIGHTS)

    def build_precision(self) -> Precision:
        """The precision policy of ``TRAINER.<NODE>.PREC`` / ``MASTER_WEIGHTS`` and ``MODEL.HALF_ON_CPU``."""
        return Precision(self.node.PREC, self.device, self.node.MASTER_WEIGHTS, self.cfg.MODEL.HALF_ON_CPU)

    # ---- construction --------------------------------------------------------------------------------------
    def build_model(self):
        cfg = self.cfg
        self.classnames: List[str] = [c.replace("_", " ") for c in self.dm.dataset.classnames]
        logger.info("Loading CLIP (backbone: %s)", cfg.MODEL.BACKBONE.NAME)
        backbone = clip.load(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.CACHE_DIR or None)
        if self.NEEDS_VIT:
            backbone.require_vit(type(self).__name__)
        self.check_input_size(backbone)
        self.precision = self.build_precision()
        self.clip_model = self.prepare_backbone(backbone)
        self.logit_scale = self.clip_model.logit_scale
        self._zs_cache: Dict[Tuple, torch.Tensor] = {}
        self._eval_text_features: Optional[torch.Tensor] = None

        logger.info("Building the prompt learner")
        learner = self.precision.prepare_learner(self.build_prompt_learner(self.clip_model, self.classnames),
                                                 self.OFFICIAL_FP32_PARAMS)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(learner, cfg.MODEL.INIT_WEIGHTS)
        self.prompt_learner = learner
        n_params = sum(p.numel() for p in learner.parameters() if p.requires_grad)
        logger.info("Trainable parameters: %s", f"{n_params:,}")
        self.register_trainable(self.MODEL_NAME, learner)

    def prepare_backbone(self, backbone: clip.CLIPBackbone) -> clip.CLIPBackbone:
        """The frozen backbone on the device, in ``PREC``'s weight dtype (a subclass may keep an fp32 copy first)."""
        return self.precision.prepare_backbone(backbone)

    def load_model_state_dict(self, name, state_dict):
        """Load a module's saved state; the class-name buffers of an official Dassl file are dropped
        (``trainers.released.drop_class_buffers``) and rebuilt for the current class set."""
        super().load_model_state_dict(name, drop_class_buffers(state_dict))

    def register_trainable(self, name: str, module: nn.Module, param_groups=None):
        """Build an optimiser and schedule over ``module`` and register it (saved, loaded, switched, stepped)."""
        trainable = [p for p in module.parameters() if p.requires_grad]
        optim = build_optimizer(module, self.cfg.OPTIM, param_groups) if trainable else None
        sched = build_lr_scheduler(optim, self.cfg.OPTIM) if optim is not None else None
        self.register_model(name, module, optim, sched)
        return optim, sched

    def check_input_size(self, backbone: clip.CLIPBackbone) -> None:
        """A ViT takes images of its own size only (its positional embedding has one entry per patch)."""
        size, n = tuple(self.cfg.INPUT.SIZE), backbone.image_size
        if backbone.is_vit and size[0] != n:
            toy_config = f"configs/trainers/{self.cfg.TRAINER.NAME}/toy.yaml"
            hint = (f", or use its config {toy_config}" if backbone.name == "toyclip"
                    and (REPO_ROOT / toy_config).is_file() else "")
            raise clip.BackboneError(f"INPUT.SIZE is {size} but {backbone.name} takes {n}x{n} images: add "
                                     f'INPUT.SIZE "({n}, {n})" to the command{hint}.')

    def build_prompt_learner(self, backbone: clip.CLIPBackbone, classnames: List[str]) -> nn.Module:
        raise NotImplementedError

    # ---- the forward pass ----------------------------------------------------------------------------------
    def text_prompts(self) -> TextPrompts:
        """The prompted text input for the current class set (default: ``self.prompt_learner()``)."""
        return self.prompt_learner()

    def vision_prompts(self) -> VisionPrompts:
        """The prompted vision input (default: none)."""
        return VisionPrompts()

    def text_features(self) -> torch.Tensor:
        """Class text features ``[C, D]`` from the learned prompts."""
        p = self.text_prompts()
        return self.clip_model.encode_text_from_embeddings(p.embeddings, p.eot_index, p.deep)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Image features ``[B, D]``."""
        v = self.vision_prompts()
        return self.clip_model.encode_image(images, v.prompts, v.deep)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` logits of ``images [B, 3, H, W]``."""
        return self.logits_from_features(self.image_features(images))

    def logits_from_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` logits from ``image_features [B, D]``; in evaluation the text side comes from the
        per-evaluation cache."""
        text = self._eval_text_features if self._eval_text_features is not None else self.text_features()
        return clip_logits(image_features, text, self.logit_scale, self.precision.head_dtype)

    # ---- frozen zero-shot knowledge ------------------------------------------------------------------------
    def zeroshot_text_features(self, templates: Optional[Sequence[str]] = None,
                               classnames: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Frozen CLIP text features ``[C, D]`` for the class set, with the dataset's hand-written template by
        default; computed once per (classes, templates) and never saved."""
        templates = tuple(templates or [config_template(self.cfg)])
        classnames = tuple(classnames or self.classnames)
        key = (classnames, templates)
        if key not in self._zs_cache:
            self._zs_cache[key] = class_text_features(self.clip_model, classnames, templates)
        return self._zs_cache[key]

    # ---- training ------------------------------------------------------------------------------------------
    def compute_loss(self, images: torch.Tensor, labels: torch.Tensor):
        """``(loss, logits, terms)``; the default is cross-entropy alone."""
        logits = self.logits(images)
        ce = F.cross_entropy(logits, labels)
        return ce, logits, {"ce": ce}

    def forward_backward(self, batch):
        images, labels = self.parse_batch_train(batch)
        with self.precision.autocast():
            loss, logits, terms = self.compute_loss(images, labels)
        self.backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(logits, labels)[0].item()}
        summary.update({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()})
        return summary

    def backward_and_update(self, loss: torch.Tensor, names=None) -> None:
        """One optimisation step, through the gradient scaler under ``PREC amp``."""
        scaler = self.precision.scaler
        if scaler is None:
            self.model_backward_and_update(loss, names)
            return
        self.model_zero_grad(names)
        self.detect_anomaly(loss)
        scaler.scale(loss).backward()
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                scaler.step(self._optims[name])
        scaler.update()

    # ---- evaluation ----------------------------------------------------------------------------------------
    IMAGE_CONDITIONED_TEXT = False  # True when text features depend on the image (CoCoOp)
    # True when image_features(x) is the frozen CLIP's plain encode_image(x) (no learned input), so evaluation may
    # reuse stored features (TEST.FEATURE_CACHE, trainers/feature_cache.py); False keeps the cache off
    FROZEN_IMAGE_FEATURES = False

    def before_test(self):
        if not self.IMAGE_CONDITIONED_TEXT:
            with self.precision.autocast():
                self._eval_text_features = self.text_features().float()

    def after_test(self):
        self._eval_text_features = None

    @torch.no_grad()
    def eval_text_features(self) -> torch.Tensor:
        """The class text features ``[C, D]`` that evaluation uses, for a text side that does not depend on the
        image (``IMAGE_CONDITIONED_TEXT`` False): computed in eval mode exactly as ``before_test`` does."""
        self.set_model_mode("eval")
        self.before_test()
        features = self._eval_text_features
        self.after_test()
        return features

    def model_inference(self, images):
        with self.precision.autocast():
            return self.logits(images).float()

    def test_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """What the feature cache stores: ``image_features(images)`` ``[B, D]`` as evaluation computes it."""
        with self.precision.autocast():
            return self.image_features(images)

    def inference_from_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """``model_inference`` from stored ``test_image_features``: the same operations, so the same logits."""
        with self.precision.autocast():
            return self.logits_from_features(image_features).float()

    def evaluation_outputs(self, loader):
        """``(logits, labels)`` per test batch, through the image-feature cache where it applies."""
        from .feature_cache import cached_evaluation_outputs

        yield from cached_evaluation_outputs(self, loader)
