"""Deep prompts shared by MaPLe, IVLP and VPT (and the methods built on them: RESTORE, APLe, LAMM).

A prompt *depth* ``J`` means the prompt slots of transformer blocks ``0..J-1`` hold learned vectors
(muzairkhattak/multimodal-prompt-learning ``clip/model.py``; docs/OFFICIAL_CODE.md): block 0 gets them with the
input (text: the context tokens spliced after SOT; vision: tokens appended after CLS + patches), and each block
``1 <= i < J`` *replaces* those slots with its own vectors before attention. Blocks ``i >= J`` pass the previous
block's slot outputs through. The backbone takes the deep part as a list indexed by block, ``[None, P_1, ..., P_{J-1}]``
(entry 0 is never read, see ``clip.backbone``).

Modules:
- :class:`DeepPrompts`: the ``J - 1`` per-block prompts ``P_i [n, d]``, each ``N(0, 0.02)`` (``VPT_shallow`` and
  ``compound_prompts_text`` in the released code).
- :class:`VisionPromptLearner`: VPT-deep, i.e. first-block vision tokens ``[n, d_v]`` plus :class:`DeepPrompts`.
- :class:`CoupledProjections`: MaPLe's vision-language coupling for blocks ``1..J-1``, ``J - 1`` deep copies of ONE
  ``Linear(d_t -> d_v)``, so they start identical as in the released ``_get_clones``.

All widths come from the backbone (``text_width``, ``vision_width``), so any ViT CLIP works.
"""
from __future__ import annotations

import copy
import logging
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from engine.config import ConfigError

from .prompt_types import VisionPrompts

logger = logging.getLogger(__name__)

PROMPT_STD = 0.02  # N(0, 0.02), the initialisation of every randomly initialised prompt in CoOp/MaPLe/VPT
MAX_INIT_TOKENS = 4  # MaPLe/IVLP initialise from CTX_INIT only when N_CTX <= 4 (released ``n_ctx <= 4`` rule)


def random_prompts(n_ctx: int, width: int, std: float = PROMPT_STD) -> torch.Tensor:
    """``[n_ctx, width]`` drawn from ``N(0, std)`` with torch's default generator (seeded by ``SEED``)."""
    return torch.empty(n_ctx, width).normal_(std=std)


def check_depth(key: str, depth: int, layers: int, minimum: int = 1) -> None:
    """One clear message when a prompt depth does not fit the backbone (a :class:`ConfigError`: exit 2)."""
    if not minimum <= depth <= layers:
        raise ConfigError(f"{key} is {depth}; it must be between {minimum} and {layers} (the number of transformer "
                         f"blocks of this backbone).")


def released_ctx_init(ctx_init: str, n_ctx: int) -> str:
    """The phrase MaPLe/IVLP initialise their text context from, or ``""`` for a random ``N(0, 0.02)`` start.

    Released rule: the phrase is used when ``N_CTX <= 4`` and then only its first ``N_CTX`` tokens become vectors,
    the rest of the phrase staying as fixed text (see ``trainers.context.init_context(..., truncate_init=True)``).
    A phrase with fewer words than ``N_CTX`` is not used either (the released code would copy EOT/padding
    embeddings into the context; a random start is what such a setting meant).
    """
    if not ctx_init:
        return ""
    n_words = len(ctx_init.replace("_", " ").split(" "))
    if n_ctx > MAX_INIT_TOKENS or n_ctx > n_words:
        logger.info('CTX_INIT "%s" is not used for %d context vectors (needs N_CTX <= min(4, words)): random '
                    "initialisation.", ctx_init, n_ctx)
        return ""
    return ctx_init


class DeepPrompts(nn.ParameterList):
    """Learned prompts for blocks ``1..depth-1``: ``depth - 1`` parameters ``[n_ctx, width]``, ``N(0, 0.02)``.

    ``depth`` counts the first block, whose prompts come from elsewhere (the text context or the vision input
    tokens), so ``depth`` 1 holds nothing (shallow prompting). Element ``k`` is the prompt of block ``k + 1``.
    """

    def __init__(self, depth: int, n_ctx: int, width: int, std: float = PROMPT_STD):
        super().__init__([nn.Parameter(random_prompts(n_ctx, width, std)) for _ in range(max(depth - 1, 0))])
        self.n_ctx = n_ctx
        self.width = width

    @property
    def depth(self) -> int:
        return len(self) + 1

    def layers(self) -> List[Optional[torch.Tensor]]:
        """The backbone's per-block list ``[None, P_1, ..., P_{depth-1}]``."""
        return [None, *self]


class VisionPromptLearner(nn.Module):
    """Deep visual prompt tuning (VPT-deep, Jia et al. 2022, as run in MaPLe's repo).

    ``ctx [n_ctx, d_v]`` (``N(0, 0.02)``) is appended after CLS + patch tokens (after the positional embedding,
    before ``ln_pre``); ``deep`` holds the replacements of those ``n_ctx`` slots at blocks ``1..depth-1``.
    ``forward() -> VisionPrompts(ctx, [None, P_1, ..., P_{depth-1}])``.
    """

    def __init__(self, n_ctx: int, width: int, depth: int):
        super().__init__()
        if n_ctx < 1 or depth < 1:
            raise ValueError(f"Vision prompting needs at least one token and depth >= 1 (got {n_ctx} tokens, depth "
                             f"{depth}); use depth 0 in the trainer config to switch vision prompts off.")
        self.ctx = nn.Parameter(random_prompts(n_ctx, width))
        self.deep = DeepPrompts(depth, n_ctx, width)

    @property
    def n_ctx(self) -> int:
        return self.ctx.shape[0]

    def forward(self) -> VisionPrompts:
        return VisionPrompts(self.ctx, self.deep.layers())


class CoupledProjections(nn.ModuleList):
    """MaPLe's coupling functions ``F_i: R^{d_t} -> R^{d_v}`` for blocks ``1..n`` (Khattak et al. 2023, Eq. 5-6).

    ``n`` deep copies of one ``nn.Linear(text_width, vision_width)``: identical weights at initialisation, then
    trained independently (released ``_get_clones``). ``forward([P_1..P_n] each [n_ctx, d_t])`` returns the vision
    deep prompts ``[F_1(P_1), ..., F_n(P_n)]`` (each ``[n_ctx, d_v]``).
    """

    def __init__(self, n: int, text_width: int, vision_width: int):
        template = nn.Linear(text_width, vision_width)
        super().__init__([copy.deepcopy(template) for _ in range(n)])

    def forward(self, text_prompts: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(text_prompts) != len(self):
            raise ValueError(f"{len(self)} coupling layers were given {len(text_prompts)} text prompts.")
        return [f(p) for f, p in zip(self, text_prompts)]
