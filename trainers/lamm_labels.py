"""LAMM's learnable label tokens ``<M_c>``: one small table of token embeddings per class, keyed by class name.

Class ``c``'s name tokenises into ``n_c`` BPE tokens whose CLIP embeddings are ``E_c [n_c, d_t]``. LAMM learns the
first ``k_c`` of them (gaojingsheng/LAMM ``trainers/coop.py``, ``token_classes``; docs/LAMM.md,
"Code-versus-paper choices"):

- ``LABEL_TOKENS min_len`` (default, the released code): ``k_c = min_c' n_c'``, the shortest name's length over the
  class set, so only the first ``min_len`` tokens of each name learn and the rest stay CLIP's;
- ``LABEL_TOKENS all`` (the paper's reading): ``k_c = n_c``, every token of every name.

The learned tokens are stored flat, class after class: ``values [K, d_t]`` (the parameter), ``anchor [K, d_t]``
(their initial value ``M^0``, a saved buffer), with ``K = sum_c k_c``. Where they go in a prompt is given by
``rows [K]`` (class index) and ``cols [K]`` (position in the name); :meth:`LabelTable.write` scatters them into a
prompt suffix in one ``index_put``. ``random_init`` draws the initial values from ``N(0, 0.02^2)`` *before* the
anchor is copied, as the released ``--random-init`` does, so ``L_WC`` pulls towards that random draw.
``max_tokens`` caps ``k_c`` (the released MaPLe+LAMM hard-codes one token per class).

Keys: a class is identified by its name; the ``j``-th repeat of a name in one class set (ImageNet has two "crane"
classes) gets the key ``"name [j]"`` (``j >= 2``), so tables of the same dataset match class for class. A table
loaded onto another class set (:meth:`load_by_class`) fills the classes it knows and leaves the others with no
learned token: their prompts use the class-name tokens.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from clip import CLIPBackbone

LABEL_TOKEN_MODES = ("all", "min_len")

LabelRows = Tuple[torch.Tensor, torch.Tensor]  # (values [k, d], anchor [k, d]) of one class


def class_keys(classnames: Sequence[str]) -> List[str]:
    """Unique keys of a class list: the name, or ``"name [j]"`` for its ``j``-th repeat (``j >= 2``)."""
    seen: Dict[str, int] = {}
    keys = []
    for name in classnames:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name} [{seen[name]}]")
    return keys


def name_token_embeddings(backbone: CLIPBackbone, classnames: Sequence[str]) -> Tuple[torch.Tensor, List[int]]:
    """CLIP's token embeddings of each bare class name, ``[C, n_max, d_t]`` (fp32, zero-padded), and ``n_c``."""
    tokens = backbone.tokenize([c.replace("_", " ") for c in classnames])
    lengths = (backbone.eot_index(tokens) - 1).tolist()
    with torch.no_grad():
        emb = backbone.token_embedding(tokens).float()
    n_max = max(lengths)
    return emb[:, 1:1 + n_max].clone(), lengths


class LabelTable(nn.Module):
    """Learned label tokens ``values [K, d_t]`` with their frozen anchor ``anchor [K, d_t]`` (see module doc)."""

    def __init__(self, backbone: CLIPBackbone, classnames: Sequence[str], label_tokens: str = "all",
                 random_init: bool = False, generator: Optional[torch.Generator] = None,
                 max_tokens: Optional[int] = None):
        super().__init__()
        if label_tokens not in LABEL_TOKEN_MODES:
            raise ValueError(f'TRAINER.LAMM.LABEL_TOKENS is "{label_tokens}"; choose one of {LABEL_TOKEN_MODES}.')
        self.classnames = list(classnames)
        self.keys = class_keys(self.classnames)
        names, self.name_lens = name_token_embeddings(backbone, self.classnames)
        if min(self.name_lens) < 1:
            empty = [c for c, n in zip(self.classnames, self.name_lens) if n < 1]
            raise ValueError(f"Class names with no token cannot get a label embedding: {empty}.")
        k = min(self.name_lens)
        counts = list(self.name_lens) if label_tokens == "all" else [k] * len(self.classnames)
        if max_tokens is not None:
            counts = [min(c, max_tokens) for c in counts]
        rows, cols = self._layout(counts)
        values = names[rows, cols]
        if random_init:
            values = torch.randn(values.shape, generator=generator) * 0.02
        self.values = nn.Parameter(values.clone())
        self.register_buffer("anchor", values.clone())
        self._set_layout(counts)

    # ---- layout ------------------------------------------------------------------------------------------
    @staticmethod
    def _layout(counts: Sequence[int]) -> LabelRows:
        rows = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
        starts = torch.cumsum(torch.tensor([0] + list(counts[:-1]), dtype=torch.long), 0)
        cols = torch.arange(int(sum(counts))) - starts[rows]
        return rows, cols

    def _set_layout(self, counts: Sequence[int]) -> None:
        self.counts = [int(k) for k in counts]
        rows, cols = self._layout(self.counts)
        device = self.values.device
        self.register_buffer("rows", rows.to(device), persistent=False)
        self.register_buffer("cols", cols.to(device), persistent=False)

    # ---- use in a prompt ---------------------------------------------------------------------------------
    def write(self, suffix: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``suffix [C, S, d_t]`` whose positions ``offset .. offset + n_c - 1`` hold class ``c``'s name, with the
        first ``k_c`` of those replaced by the learned tokens (out of place; gradients reach ``values``)."""
        return suffix.index_put((self.rows, self.cols + offset), self.values.to(suffix.dtype))

    def consolidation_loss(self) -> torch.Tensor:
        """``L_WC = sum (M - M^0)^2`` over every learned token and dimension (``F.mse_loss(..., "sum")`` in the
        released code: an unnormalised sum that grows with the number of classes)."""
        return (self.values - self.anchor).pow(2).sum()

    # ---- saving, loading, merging ------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        """Plain values that say which rows of ``values``/``anchor`` belong to which class."""
        return {"classnames": list(self.classnames), "counts": list(self.counts)}

    @staticmethod
    def split_by_class(values: torch.Tensor, anchor: torch.Tensor, meta: dict) -> Dict[str, LabelRows]:
        """``{key: (values [k_c, d], anchor [k_c, d])}`` from flat saved tensors and their :meth:`checkpoint_meta`."""
        counts, names = list(meta["counts"]), list(meta["classnames"])
        if len(counts) != len(names) or sum(counts) != values.shape[0] or values.shape != anchor.shape:
            raise ValueError(f"Inconsistent LAMM label table: {len(names)} class names, counts summing to "
                             f"{sum(counts)}, values {tuple(values.shape)}, anchor {tuple(anchor.shape)}.")
        pairs = zip(values.split(counts), anchor.split(counts))
        return {key: (v, a) for key, (v, a) in zip(class_keys(names), pairs) if v.shape[0] > 0}

    def by_class(self) -> Dict[str, LabelRows]:
        """This table as ``{key: (values [k_c, d], anchor [k_c, d])}`` (detached)."""
        return self.split_by_class(self.values.detach(), self.anchor, self.checkpoint_meta())

    @torch.no_grad()
    def load_by_class(self, table: Dict[str, LabelRows]) -> List[str]:
        """Take each class's learned tokens from ``table``; return the names of classes it has none for.

        Classes missing from ``table`` keep no learned token (``k_c = 0``): their prompt is the class name. When
        the resulting layout equals the current one the parameter is updated in place (optimiser state stays
        valid, as on resume); otherwise it is replaced, which is meant for evaluation and merging.
        """
        counts, values, anchors, missing = [], [], [], []
        for name, key, n in zip(self.classnames, self.keys, self.name_lens):
            if key not in table:
                counts.append(0)
                missing.append(name)
                continue
            v, a = table[key]
            if v.shape[0] > n or v.shape[-1] != self.values.shape[-1]:
                raise ValueError(f'The saved label of "{name}" has shape {tuple(v.shape)} but the name has {n} '
                                 f"tokens of width {self.values.shape[-1]}: was it trained with another backbone?")
            counts.append(v.shape[0])
            values.append(v)
            anchors.append(a)
        width, device = self.values.shape[-1], self.values.device
        new_values = torch.cat(values).to(device) if values else torch.zeros(0, width, device=device)
        new_anchor = torch.cat(anchors).to(device) if anchors else torch.zeros(0, width, device=device)
        if counts == self.counts:
            self.values.copy_(new_values)
            self.anchor.copy_(new_anchor)
        else:
            self.values = nn.Parameter(new_values.float(), requires_grad=self.values.requires_grad)
            self.anchor = new_anchor.float()
            self._set_layout(counts)
        return missing
