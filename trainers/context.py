"""Learned-context initialisation and the class-name prompt layout shared by every CoOp-family learner."""
from __future__ import annotations

import logging
from typing import List, Optional, Tuple

import torch

from clip import CLIPBackbone

logger = logging.getLogger(__name__)


CSC_WITH_INIT = ("shared", "per_class")  # what CSC True means when the context is initialised from words


def init_context(backbone: CLIPBackbone, n_ctx: int, ctx_init: str = "", n_cls: int = 0, csc: bool = False,
                 truncate_init: bool = False, csc_with_init: str = "shared",
                 csc_key: str = "TRAINER.COOP") -> Tuple[torch.Tensor, str]:
    """Initial context vectors and the textual prompt prefix they stand for.

    - ``ctx_init`` given, CoOp's rule (``truncate_init=False``): ``n_ctx`` = number of words of the phrase, vectors
      copied from their token embeddings; prefix = the phrase.
    - ``ctx_init`` given with ``csc``: the official CoOp builds ONE shared context from the words and ignores CSC
      (``csc_with_init="shared"``, default, with a warning naming ``{csc_key}.CSC``); ``"per_class"`` gives every
      class its own copy of the words' vectors, ``[n_cls, n, d_t]``.
    - ``ctx_init`` given, MaPLe/IVLP's rule (``truncate_init=True``): the first ``n_ctx`` token embeddings of the
      phrase; the prefix keeps the WHOLE phrase, so the tokens after the first ``n_ctx`` stay as fixed text
      ("a photo of a" with ``n_ctx=2`` -> ``[SOS] ctx1 ctx2 of a {class}.``; MaPLe's
      ``MultiModalPromptLearner``, docs/OFFICIAL_CODE.md).
    - otherwise ``N(0, 0.02)`` vectors ``[n_ctx, d_t]`` (``[n_cls, n_ctx, d_t]`` with class-specific context ``csc``)
      and the prefix ``"X X ... X"``.

    Returns ``(ctx fp32 [n_ctx, d_t] or [n_cls, n_ctx, d_t], prompt_prefix)``.
    """
    width = backbone.text_width
    if ctx_init:
        phrase = ctx_init.replace("_", " ")
        tokens = backbone.tokenize(phrase)
        with torch.no_grad():
            emb = backbone.token_embedding(tokens).float()  # [1, L, d_t]
        n_words = len(phrase.split(" "))
        n = min(n_ctx, n_words) if truncate_init else n_words
        ctx = emb[0, 1: 1 + n, :].clone()
        if csc and csc_with_init not in CSC_WITH_INIT:
            raise ValueError(f'{csc_key}.CSC_WITH_INIT is "{csc_with_init}"; choose one of {", ".join(CSC_WITH_INIT)}.')
        if csc and csc_with_init == "per_class":
            ctx = ctx.unsqueeze(0).repeat(n_cls, 1, 1)
        elif csc:
            logger.warning('%s.CSC True is ignored with CTX_INIT "%s", as in the official CoOp: one context shared by '
                           'all classes, initialised from the words. Set %s.CSC_WITH_INIT per_class for a context '
                           'per class initialised from the words.', csc_key, phrase, csc_key)
        logger.info('Initial context: "%s" (%d learnable vectors)', phrase, n)
        return ctx, phrase
    shape = (n_cls, n_ctx, width) if csc else (n_ctx, width)
    ctx = torch.empty(shape).normal_(std=0.02)
    logger.info("Random context initialisation (%d learnable vectors%s)", n_ctx, ", class-specific" if csc else "")
    return ctx, " ".join(["X"] * n_ctx)


def class_prompts(prefix: str, classnames: List[str]) -> List[str]:
    """``"{prefix} {classname}."`` per class, with ``_`` in class names read as spaces."""
    return [f"{prefix} {name.replace('_', ' ')}." for name in classnames]


def class_name_lengths(backbone: CLIPBackbone, classnames: List[str]) -> List[int]:
    """Number of BPE tokens of each class name (CoOp's ``name_lens``)."""
    tokens = backbone.tokenize([name.replace("_", " ") for name in classnames])
    return (backbone.eot_index(tokens) - 1).tolist()


def embed_prompts(backbone: CLIPBackbone, texts: List[str], device: Optional[torch.device] = None):
    """Token ids ``[C, L]`` and their (frozen) embeddings ``[C, L, d_t]`` in fp32."""
    tokens = backbone.tokenize(texts)
    with torch.no_grad():
        emb = backbone.token_embedding(tokens).float()
    return tokens, emb
