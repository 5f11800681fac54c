"""IVLP: independent (uncoupled) deep vision and language prompts (MaPLe paper's baseline, ``independentVL.py``).

Text: ``[SOS] ctx_1..ctx_n <rest of CTX_INIT> {class}. [EOT]`` (``ctx [n_t, d_t]`` from the first ``N_CTX_TEXT``
tokens of ``CTX_INIT``), deep text prompts ``P^t_i [n_t, d_t]`` at blocks ``1..PROMPT_DEPTH_TEXT-1``. Vision:
``V_0 [n_v, d_v]`` appended to the image tokens and ``V_i [n_v, d_v]`` at blocks ``1..PROMPT_DEPTH_VISION-1``;
all deep/vision prompts ``N(0, 0.02)``. No coupling between the towers. Loss: cross-entropy.

``PROMPT_DEPTH_VISION 0`` switches the vision prompts off: deep language-only prompting (the released
``vit_b16_c2_ep5_batch4_4ctx_language_only`` config), which then also runs on ResNet backbones.

Keys ``TRAINER.IVLP.*`` (released ``extend_cfg``): ``N_CTX_VISION`` (2), ``N_CTX_TEXT`` (2), ``CTX_INIT``
("a photo of a"), ``PREC`` (fp16), ``PROMPT_DEPTH_VISION`` (9), ``PROMPT_DEPTH_TEXT`` (9; must be >= 1, as released).
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional

import torch

from clip import CLIPBackbone
from engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .facts import MethodFacts, ProtocolDefaults, official_configs
from .coop import CoOpPromptLearner
from .deep_prompts import DeepPrompts, VisionPromptLearner, check_depth, released_ctx_init
from .prompt_types import TextPrompts, VisionPrompts


class IVLPPromptLearner(CoOpPromptLearner):
    """Independent V-L prompts; a :class:`CoOpPromptLearner` (``ctx``, class buffers, ``assemble``) plus:

    - ``deep_text``: :class:`DeepPrompts`, ``depth_text - 1`` text prompts ``[n_t, d_t]``;
    - ``vision``: :class:`VisionPromptLearner` (``[n_v, d_v]`` input tokens + deep), or ``None`` at vision depth 0.

    ``forward(suffix=None) -> TextPrompts`` (``[C, L, d_t]`` with the deep text prompts);
    ``vision_prompts() -> VisionPrompts`` (empty at vision depth 0). ``config_node`` names the config keys in
    error messages (methods built on IVLP pass their own node).
    """

    def __init__(self, backbone: CLIPBackbone, classnames: List[str], n_ctx_text: int = 2,
                 ctx_init: str = "a photo of a", depth_text: int = 9, n_ctx_vision: int = 2, depth_vision: int = 9,
                 *, config_node: str = "TRAINER.IVLP"):
        check_depth(f"{config_node}.PROMPT_DEPTH_TEXT", depth_text, backbone.text_layers)
        if depth_vision > 0:
            backbone.require_vit("IVLP with vision prompts (PROMPT_DEPTH_VISION > 0)")
            check_depth(f"{config_node}.PROMPT_DEPTH_VISION", depth_vision, backbone.vision_layers)
            if n_ctx_vision < 1:
                raise ValueError(f"{config_node}.N_CTX_VISION is {n_ctx_vision} with PROMPT_DEPTH_VISION "
                                 f"{depth_vision}: set N_CTX_VISION >= 1, or PROMPT_DEPTH_VISION 0 for language-only "
                                 "prompting.")
        super().__init__(backbone, classnames, n_ctx_text, released_ctx_init(ctx_init, n_ctx_text),
                         truncate_init=True)
        self.deep_text = DeepPrompts(depth_text, self.n_ctx, backbone.text_width)
        self.vision = VisionPromptLearner(n_ctx_vision, backbone.vision_width, depth_vision) if depth_vision else None

    def forward(self, suffix: Optional[torch.Tensor] = None) -> TextPrompts:
        return TextPrompts(self.assemble(self.context(), suffix), self.eot_index, self.deep_text.layers())

    def vision_prompts(self) -> VisionPrompts:
        return self.vision() if self.vision is not None else VisionPrompts()


_TEXT_CTX = re.compile(r"^prompt_learner\.ctx$")
_VISION_CTX = re.compile(r"^image_encoder\.VPT$")
_DEEP = re.compile(r"^(text|image)_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")


def from_released_state(state_dict: Dict[str, torch.Tensor], vision_prefix: str = "vision.") -> Dict[str, torch.Tensor]:
    """A released IVLP/VPT state dict (the whole ``CustomCLIP``, with the prompts named ``VPT`` and ``VPT_shallow``
    inside CLIP's blocks; docs/OFFICIAL_CODE.md) -> learner keys; a state dict of this project is returned unchanged.

    ``prompt_learner.ctx`` -> ``ctx``; ``image_encoder.VPT`` -> ``<vision_prefix>ctx``; block ``i``'s
    ``VPT_shallow`` -> ``deep_text.<i-1>`` (text) or ``<vision_prefix>deep.<i-1>`` (vision); the rest is dropped.
    """
    if not any(k.startswith(("image_encoder.", "text_encoder.", "prompt_learner.")) for k in state_dict):
        return state_dict
    out = {}
    for key, value in state_dict.items():
        deep = _DEEP.match(key)
        if _TEXT_CTX.match(key):
            out["ctx"] = value
        elif _VISION_CTX.match(key):
            out[vision_prefix + "ctx"] = value
        elif deep:
            block = int(deep.group(2))
            out[f"deep_text.{block - 1}" if deep.group(1) == "text" else f"{vision_prefix}deep.{block - 1}"] = value
    return out


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    CFG_NODE = "IVLP"
    MODEL_NAME = "VLPromptLearner"  # the released registered name (output/<name>/model.pth.tar-<E>)
    FACTS = MethodFacts(
        protocol=ProtocolDefaults("vit_b16_c2_ep5_batch4_2+2ctx"),
        toy_config="configs/trainers/IVLP/toy.yaml",
        tiny_opts=("TRAINER.IVLP.PROMPT_DEPTH_TEXT", "3", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "2"),
        released="trainers.ivlp.from_released_state",
        paper="arXiv 2210.03117 (Khattak et al., CVPR 2023: independent V-L prompting)",
        official_code="muzairkhattak/multimodal-prompt-learning trainers/independentVL.py:IVLP",
        docs="README.md#methods",
        official_configs=official_configs("muzairkhattak/multimodal-prompt-learning", "IVLP", "IVLP",
                                          ("vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_4ctx_language_only")),
    )

    @property
    def NEEDS_VIT(self) -> bool:  # noqa: N802 - the PromptTrainer attribute, decided by the config here
        return self.node.PROMPT_DEPTH_VISION > 0

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.IVLP = CN()
        cfg.TRAINER.IVLP.N_CTX_VISION = 2  # vision prompt tokens per block
        cfg.TRAINER.IVLP.N_CTX_TEXT = 2  # text context tokens per block
        cfg.TRAINER.IVLP.CTX_INIT = "a photo of a"  # first N_CTX_TEXT tokens initialise ctx; the rest stays fixed text
        cfg.TRAINER.IVLP.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.IVLP.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9  # vision blocks 0..J-1 hold prompts; 0 = language-only prompting
        cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9  # text blocks 0..J-1 hold prompts (>= 1)

    # official fp16: ctx in clip_model.dtype; the vision prompts (image_encoder.VPT) and every deep prompt (VPT_shallow)
    # are fp32 parameters cast with .half() where they enter the blocks (clip/model.py)
    OFFICIAL_FP32_PARAMS = ("deep_text", "vision")

    def build_prompt_learner(self, backbone, classnames):
        n = self.node
        return IVLPPromptLearner(backbone, classnames, n.N_CTX_TEXT, n.CTX_INIT, n.PROMPT_DEPTH_TEXT,
                                 n.N_CTX_VISION, n.PROMPT_DEPTH_VISION)

    def vision_prompts(self) -> VisionPrompts:
        return self.prompt_learner.vision_prompts()

    def load_model_state_dict(self, name, state_dict):
        super().load_model_state_dict(name, from_released_state(state_dict))
