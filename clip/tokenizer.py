"""Tokenisation with CLIP's byte-pair encoder (open_clip's copy of OpenAI's vocabulary)."""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from open_clip.tokenizer import SimpleTokenizer

_TOKENIZERS = {}


def _tokenizer(context_length: int) -> SimpleTokenizer:
    if context_length not in _TOKENIZERS:
        _TOKENIZERS[context_length] = SimpleTokenizer(context_length=context_length)
    return _TOKENIZERS[context_length]


def tokenize(texts: Union[str, Sequence[str]], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """OpenAI's ``clip.tokenize``: ``[N, context_length]`` LongTensor of SOT + BPE + EOT, zero padded.

    A text longer than the context raises (as OpenAI's) unless ``truncate`` is set, in which case the last kept
    token becomes EOT.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    tok = _tokenizer(context_length)
    sot, eot = tok.sot_token_id, tok.eot_token_id
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot] + tok.encode(text) + [eot]
        if len(ids) > context_length:
            if not truncate:
                raise ValueError(f'Input "{text}" is too long for context length {context_length} '
                                 f"({len(ids)} tokens).")
            ids = ids[:context_length]
            ids[-1] = eot
        result[i, : len(ids)] = torch.tensor(ids)
    return result


def encode(text: str) -> List[int]:
    """BPE ids of ``text`` without SOT/EOT (``len(encode(name))`` is CoOp's ``name_lens``)."""
    return _tokenizer(77).encode(text)
