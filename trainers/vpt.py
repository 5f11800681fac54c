"""VPT: deep visual prompt tuning on CLIP (Jia et al., ECCV 2022), the MaPLe paper's "deep vision prompting".

Vision: ``V_0 [n, d_v]`` appended to the image tokens and ``V_i [n, d_v]`` replacing those slots at blocks
``1..PROMPT_DEPTH_VISION-1``, all ``N(0, 0.02)``. Text: FIXED frozen-CLIP features of ``"a photo of a {class}."``
(released ``FixedEmbeddings``), computed once per class set and never saved. Loss: cross-entropy on
``s * cos(f(x; V), g("a photo of a {c}."))``.

Keys ``TRAINER.VPT.*`` (released ``extend_cfg``): ``N_CTX_VISION`` (2), ``CTX_INIT`` ("a photo of a"; kept for config
compatibility, the released trainer never reads it: the text template is fixed), ``PREC`` (fp16),
``PROMPT_DEPTH_VISION`` (1 = shallow VPT; the released ``..._4`` config uses 12 with 8 tokens).
Precision note: the released trainer casts CLIP to fp32 whatever ``PREC`` says (``load_clip_to_cpu`` returns
``model.float()``), so the published VPT numbers come from an fp32 CLIP. Its official fp16 reading (``PREC fp16``,
``MASTER_WEIGHTS fp16``) is therefore an fp32 CLIP, fp32 prompts and head, with the prompts rounded to fp16 where
they enter the vision tower (``.half()`` in ``clip/model.py`` ``VisionTransformer_VPT.forward`` and
``ResidualAttentionBlock_IVLP.forward``, then concatenated with the fp32 tokens).
"""
from __future__ import annotations

import torch

from engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .facts import MethodFacts, ProtocolDefaults, official_configs
from .deep_prompts import VisionPromptLearner, check_depth
from .ivlp import from_released_state
from .prompt_types import VisionPrompts

FIXED_TEMPLATE = "a photo of a {}."


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    CFG_NODE = "VPT"
    MODEL_NAME = "prompt_learner"  # the released registered name
    NEEDS_VIT = True
    OFFICIAL_FP32_PARAMS = ("",)  # every prompt is an fp32 parameter in the released VPT
    FACTS = MethodFacts(
        protocol=ProtocolDefaults("vit_b16_c2_ep5_batch4_4", reported_as=("VPT-deep",)),
        toy_config="configs/trainers/VPT/toy.yaml",
        tiny_opts=("TRAINER.VPT.N_CTX_VISION", "3", "TRAINER.VPT.PROMPT_DEPTH_VISION", "3"),
        released="trainers.ivlp.from_released_state",
        paper="arXiv 2203.12119 (Jia et al., ECCV 2022); the deep variant of muzairkhattak/multimodal-prompt-learning",
        official_code="muzairkhattak/multimodal-prompt-learning trainers/vpt.py:VPT",
        docs="README.md#methods",
        official_configs=official_configs("muzairkhattak/multimodal-prompt-learning", "VPT", "VPT",
                                          ("vit_b16_c2_ep5_batch4_4",)),
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.VPT = CN()
        cfg.TRAINER.VPT.N_CTX_VISION = 2  # vision prompt tokens per block
        cfg.TRAINER.VPT.CTX_INIT = "a photo of a"  # unused (as released): the text side is the fixed template
        cfg.TRAINER.VPT.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.VPT.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.VPT.PROMPT_DEPTH_VISION = 1  # vision blocks 0..J-1 hold prompts (1 = shallow VPT)

    def build_prompt_learner(self, backbone, classnames):
        n = self.node
        check_depth("TRAINER.VPT.PROMPT_DEPTH_VISION", n.PROMPT_DEPTH_VISION, backbone.vision_layers)
        return VisionPromptLearner(n.N_CTX_VISION, backbone.vision_width, n.PROMPT_DEPTH_VISION)

    def text_features(self) -> torch.Tensor:
        """Frozen ``"a photo of a {c}."`` features ``[C, D]`` (cached per class set, never saved)."""
        return self.zeroshot_text_features([FIXED_TEMPLATE])

    def build_precision(self):
        precision = super().build_precision()
        if precision.official_fp16:  # the released load_clip_to_cpu returns model.float()
            precision.backbone_dtype = precision.head_dtype = torch.float32
        return precision

    def vision_prompts(self) -> VisionPrompts:
        v = self.prompt_learner()
        if not self.precision.official_fp16:
            return v
        return VisionPrompts(v.prompts.half(), [p if p is None else p.half() for p in v.deep])

    def load_model_state_dict(self, name, state_dict):
        super().load_model_state_dict(name, from_released_state(state_dict, vision_prefix=""))
