"""Nemesis's normalisation terms (Fu et al., ICLR 2024), as pure functions of the learned context.

The context is ``P [M, d]`` (M positions of width d), or ``[C, M, d]`` with class-specific context (CSC).
Reproduced from the released ``CoOpNemesis.forward_backward`` (ShyFoo/Nemesis @ 991d6cd2;
docs/NEMESIS.md):

- weighted norm   ``L_N(alpha) = sum_j alpha_j * ||P_j||_p / max(1, #{j : alpha_j != 0})``; the p-norm runs over
  the embedding dimension and is not squared; with CSC the sum also runs over classes while the divisor counts
  positions only (the released code's rule);
- PUN             ``alpha_j = A`` for every j, i.e. ``A * mean_j ||P_j||_p``;
- PAN             ``alpha_j = scale * 1[correct_j > correct_0]`` on the positions tested by pre-inference
  (``correct_0``: top-1 hits of the unmodified prompt on the batch; ``correct_j``: with position j rescaled);
- schedule        ``omega(t) = 1 - 1 / (1 + exp(-k (t - T/2)))`` with t the 0-indexed epoch, T = MAX_EPOCH and
  k = 0.2 (the released ``omega_schedule``), or a constant 1.
"""
from __future__ import annotations

import math
import torch

NORM_ORDERS = {"two": 2.0, "one": 1.0, "inf": math.inf}  # the released code's NT values
SCHEDULES = ("logistic", "constant")


def norm_order(name: str) -> float:
    if name not in NORM_ORDERS:
        raise ValueError(f'TRAINER.NEMESIS.NORM is "{name}"; choose one of {", ".join(NORM_ORDERS)}.')
    return NORM_ORDERS[name]


def position_norms(ctx: torch.Tensor, norm: str = "two") -> torch.Tensor:
    """``||P_j||_p`` over the embedding dimension: ``[M, d] -> [M]``, ``[C, M, d] -> [C, M]``, in ``ctx``'s dtype
    (fp16 under the official fp16 reading: the released ``torch.norm(self.model.prompt_learner.ctx, p=2, dim=-1)`` in
    ``CoOpNemesis.normalize``; the fp32 ``pos_alpha`` then makes the weighted sum fp32)."""
    return torch.linalg.vector_norm(ctx, ord=norm_order(norm), dim=-1)


def weighted_norm(ctx: torch.Tensor, alpha: torch.Tensor, norm: str = "two") -> torch.Tensor:
    """``L_N(alpha)`` for per-position weights ``alpha [M]`` (a scalar tensor; 0 when every weight is 0)."""
    alpha = alpha.to(device=ctx.device, dtype=torch.float32)
    count = max(1, int((alpha != 0).sum()))
    return (position_norms(ctx, norm) * alpha).sum() / count


def pun_loss(ctx: torch.Tensor, scale: float, norm: str = "two") -> torch.Tensor:
    """Position-Uniform Normalisation: ``scale * mean_j ||P_j||_p`` (summed over classes with CSC)."""
    return weighted_norm(ctx, torch.full((ctx.shape[-2],), float(scale)), norm)


def pan_loss(ctx: torch.Tensor, flagged: torch.Tensor, scale: float, norm: str = "two") -> torch.Tensor:
    """Position-Aware Normalisation: ``scale *`` the mean norm of the ``flagged [M]`` (bool) positions, 0 if none."""
    return weighted_norm(ctx, flagged.float() * float(scale), norm)


def sample_positions(n_ctx: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` distinct positions out of ``n_ctx``, uniformly (the released ``random.sample(range(M), NP)``), ``[n]``."""
    return torch.randperm(n_ctx, generator=generator)[:n]


def rescaled_variants(ctx: torch.Tensor, positions: torch.Tensor, factor: float) -> torch.Tensor:
    """``[1 + K, *ctx.shape]``: copy 0 is ``ctx``; copy ``k >= 1`` has position ``positions[k-1]`` multiplied by
    ``factor`` (for every class with CSC). Detached: pre-inference never back-propagates."""
    variants = ctx.detach().unsqueeze(0).repeat(1 + len(positions), *([1] * ctx.dim()))
    for k, j in enumerate(positions.tolist(), start=1):
        variants[k, ..., j, :] *= factor
    return variants


def pan_flags(correct: torch.Tensor, positions: torch.Tensor, n_ctx: int) -> torch.Tensor:
    """Flagged positions ``[n_ctx]`` (bool): position ``positions[k]`` is flagged when its rescaled copy gets
    strictly more of the batch right than the original, ``correct[k + 1] > correct[0]`` (``correct [1 + K]``)."""
    flagged = torch.zeros(n_ctx, dtype=torch.bool)
    flagged[positions.cpu()] = (correct[1:] > correct[0]).cpu()
    return flagged


def omega(epoch: int, max_epoch: int, schedule: str = "logistic", k: float = 0.2) -> float:
    """The loss weight's schedule ``omega(t)``; ``epoch`` is 0-indexed and ``max_epoch`` is T.

    logistic: ``1 - 1 / (1 + exp(-k (t - T/2)))`` (about 0.993 at t=0, 0.5 at t=T/2, 0.008 at t=49 for T=50);
    constant: 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "logistic":
        raise ValueError(f'TRAINER.NEMESIS.SCHEDULE is "{schedule}"; choose one of {", ".join(SCHEDULES)}.')
    z = -k * (epoch - max_epoch / 2)  # omega = 1 - 1/(1 + e^z) = sigmoid(z), evaluated without overflow
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def flagged_rate(flagged: torch.Tensor, tested: torch.Tensor) -> torch.Tensor:
    """Per-position share of the pre-inference tests that flagged it (0 where never tested)."""
    return flagged.float() / tested.float().clamp(min=1)


def frobenius(ctx: torch.Tensor) -> float:
    """Frobenius norm of the context (``[M, d]``), averaged over classes with CSC (the released ``matrix_norm``)."""
    flat = ctx.detach().float().reshape(-1, ctx.shape[-2] * ctx.shape[-1])
    return float(torch.linalg.vector_norm(flat, dim=-1).mean())


def mean_position_norms(ctx: torch.Tensor, norm: str = "two") -> torch.Tensor:
    """``||P_j||_p`` per position ``[M]``, averaged over classes with CSC (what ``metrics.jsonl`` logs)."""
    norms = position_norms(ctx.detach(), norm)
    return norms.mean(0) if norms.dim() == 2 else norms
