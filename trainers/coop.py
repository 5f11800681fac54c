"""CoOp (Zhou et al., IJCV 2022): a learned context in front of each class name.

Prompt ``t_c = [SOS][V]_1 ... [V]_M [CLASS_c] . [EOT]``; logits ``s * cos(f(x), g(t_c))``; loss cross-entropy
(CoOp's ``trainers/coop.py``). Keys ``TRAINER.COOP.*`` (CoOp's ``extend_cfg``):
``N_CTX`` (16), ``CTX_INIT`` ("" = random N(0, 0.02); a phrase sets N_CTX to its word count), ``CSC`` (class-specific
context), ``CLASS_TOKEN_POSITION`` (end | middle | front), ``PREC`` (fp16 | bf16 | amp | fp32).
``CSC True`` with ``CTX_INIT``: the official code ignores CSC and learns one shared context initialised from the
words (``CSC_WITH_INIT shared``, default, logged as a warning; the checkpoint's ``ctx`` is ``[n_ctx, d_t]`` as
official); ``CSC_WITH_INIT per_class`` gives each class its own context initialised from the words.
The class-name buffers are not saved, so a learned context loads onto any class set (base -> new).

Official fp16 (``PREC fp16``, ``MASTER_WEIGHTS fp16``; ``trainers/precision.py``): ``ctx_vectors`` is created in
``clip_model.dtype`` and the prefix/suffix embeddings are ``.type(dtype)`` (``PromptLearner.__init__``), so ``ctx``
and the buffers are fp16; ``CustomCLIP.forward`` normalises the fp16 features in fp16 and the logits
``logit_scale.exp() * image_features @ text_features.t()`` (fp32 scale times fp16) and the cross-entropy are fp16;
Dassl's SGD steps the fp16 ``ctx`` with an fp16 momentum buffer.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn

from clip import CLIPBackbone
from engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .facts import MethodFacts, ProtocolDefaults, coop_fewshot_rule, official_configs
from .context import class_name_lengths, class_prompts, embed_prompts, init_context
from .prompt_types import TextPrompts

POSITIONS = ("end", "middle", "front")


class CoOpPromptLearner(nn.Module):
    """Learned context ``ctx [n_ctx, d_t]`` (or ``[C, n_ctx, d_t]`` with CSC) spliced into each class prompt.

    Buffers (rebuilt for every class set, never saved): ``token_prefix [C, 1, d_t]`` (SOS),
    ``token_suffix [C, L - 1 - n_ctx, d_t]`` (class name, ".", EOT, padding), ``tokenized_prompts [C, L]``.
    """

    def __init__(self, backbone: CLIPBackbone, classnames: List[str], n_ctx: int = 16, ctx_init: str = "",
                 csc: bool = False, class_token_position: str = "end", truncate_init: bool = False,
                 csc_with_init: str = "shared", cfg_node: str = "TRAINER.COOP"):
        super().__init__()
        if class_token_position not in POSITIONS:
            raise ValueError(f'CLASS_TOKEN_POSITION "{class_token_position}" must be one of {POSITIONS}.')
        n_cls = len(classnames)
        ctx, prefix = init_context(backbone, n_ctx, ctx_init, n_cls, csc, truncate_init=truncate_init,
                                   csc_with_init=csc_with_init, csc_key=cfg_node)
        self.ctx = nn.Parameter(ctx)
        self.n_ctx = ctx.shape[-2]
        self.n_cls = n_cls
        self.class_token_position = class_token_position
        self.prompt_prefix = prefix
        tokens, emb = embed_prompts(backbone, class_prompts(prefix, classnames))
        self.register_buffer("tokenized_prompts", tokens, persistent=False)
        self.register_buffer("token_prefix", emb[:, :1, :], persistent=False)
        self.register_buffer("token_suffix", emb[:, 1 + self.n_ctx:, :], persistent=False)
        self.register_buffer("eot_index", backbone.eot_index(tokens), persistent=False)
        self.name_lens = class_name_lengths(backbone, classnames)

    def context(self) -> torch.Tensor:
        """The context per class, ``[C, n_ctx, d_t]``."""
        return self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1) if self.ctx.dim() == 2 else self.ctx

    def assemble(self, ctx: torch.Tensor, suffix: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Token embeddings ``[C, L, d_t]`` from context ``[C, n_ctx, d_t]`` (and an optional replacement
        ``suffix`` whose first ``name_lens[c]`` positions hold class ``c``'s name)."""
        prefix = self.token_prefix
        suffix = self.token_suffix if suffix is None else suffix
        if self.class_token_position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        rows = []
        half = self.n_ctx // 2
        for i, n in enumerate(self.name_lens):
            name, rest = suffix[i:i + 1, :n], suffix[i:i + 1, n:]
            c = ctx[i:i + 1]
            if self.class_token_position == "middle":
                rows.append(torch.cat([prefix[i:i + 1], c[:, :half], name, c[:, half:], rest], dim=1))
            else:
                rows.append(torch.cat([prefix[i:i + 1], name, c, rest], dim=1))
        return torch.cat(rows, dim=0)

    def forward(self, suffix: Optional[torch.Tensor] = None) -> TextPrompts:
        return TextPrompts(self.assemble(self.context(), suffix), self.eot_index)


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    CFG_NODE = "COOP"
    FROZEN_IMAGE_FEATURES = True  # prompts on the text side only
    FACTS = MethodFacts(  # xd/dg: the 50-epoch ctxv1 config that CoCoOp compares against [inferred]
        protocol=ProtocolDefaults("vit_b16_ctxv1", base2new_imagenet="vit_b16_ep50_ctxv1",
                                  transfer="vit_b16_ep50_ctxv1", fewshot=coop_fewshot_rule("vit_b16")),
        toy_config="configs/trainers/CoOp/toy.yaml",
        released="trainers.released.drop_class_buffers",
        paper="arXiv 2109.01134 (Zhou et al., IJCV 2022)",
        official_code="KaiyangZhou/CoOp trainers/coop.py:CoOp",
        docs="README.md#methods",
        official_configs=official_configs("KaiyangZhou/CoOp", "CoOp", "CoOp", (
            "rn101 rn101_ep50 rn50 rn50_ctxv1 rn50_ep100 rn50_ep50 rn50_ep50_ctxv1 rn50_val vit_b16 vit_b16_ctxv1 "
            "vit_b16_ep100 vit_b16_ep100_ctxv1 vit_b16_ep50 vit_b16_ep50_ctxv1 vit_b32 vit_b32_ep50").split()),
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.COOP = CN()
        cfg.TRAINER.COOP.N_CTX = 16  # number of context vectors (overridden by the word count of CTX_INIT)
        cfg.TRAINER.COOP.CSC = False  # class-specific context
        cfg.TRAINER.COOP.CTX_INIT = ""  # initialisation phrase, e.g. "a photo of a"; "" = random
        cfg.TRAINER.COOP.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.COOP.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # end, middle or front
        cfg.TRAINER.COOP.CSC_WITH_INIT = "shared"  # CSC with CTX_INIT: shared (official, CSC ignored) or per_class

    def build_prompt_learner(self, backbone, classnames):
        n = self.node
        return CoOpPromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT, n.CSC, n.CLASS_TOKEN_POSITION,
                                 csc_with_init=n.CSC_WITH_INIT)
