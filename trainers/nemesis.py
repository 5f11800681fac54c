"""Nemesis (Fu, Wang, Huang, Zhang, ICLR 2024): normalising the soft-prompt vectors of CoOp and CoCoOp.

    L = CE + omega(t) * (beta * L_PUN + (1 - beta) * L_PAN)
    L_PUN = A * mean_j ||P_j||_p                                    (every context position)
    L_PAN = A_PAN * mean_{j flagged} ||P_j||_p   (0 if none)         (positions flagged by pre-inference)

P is the learned context ``ctx [M, d]`` of the base method (``[C, M, d]`` with CSC). Pre-inference, every step,
on the current (augmented) training batch, without gradients: NP distinct positions are drawn at random; the
context is copied 1 + NP times, copy k with position S_k multiplied by CW (all classes); a position is flagged when
its copy gets strictly more images right than the unmodified context. The terms are in ``nemesis_loss``, the
batched pre-inference in ``nemesis_pan``.

Composition: ``TRAINER.NEMESIS.BASE`` names the base trainer, ``coop`` (``trainers/coop.py``) or ``cocoop``
(``trainers/cocoop.py``). Building ``NemesisTrainer(cfg)`` returns an instance of ``Nemesis<Base>``, whose MRO is
``NemesisTrainer -> <Base> -> PromptTrainer``: the base trainer builds its prompt learner and computes its logits
and cross-entropy unchanged (from its own ``TRAINER.COOP`` / ``TRAINER.COCOOP`` keys), and Nemesis only adds the
penalty in ``compute_loss``. The checkpoint is the base method's (``prompt_learner`` with ``ctx``), so every
CoOp-family tool (evaluation, base -> new, ``tools.corruption``) reads it.

Where the released code (ShyFoo/Nemesis @ 991d6cd2, ``CoOpNemesis``) and the paper differ, the default is the
code and a key gives the paper's reading (docs/NEMESIS.md, "Code-versus-paper choices"):

- ``SCHEDULE``: ``logistic`` (code: ``omega(t) = 1 - 1/(1+exp(-k(t - T/2)))``, t the 0-indexed epoch, T =
  MAX_EPOCH, k = ``SCHEDULE_K`` = 0.2, so the penalty fades out in the second half of training) or ``constant``
  (omega = 1, the paper's ``CE + beta PUN + (1 - beta) PAN``).
- ``PAN_A``: PAN's scale. The code uses A, except for Food101 and OxfordPets where it hard-wired 50 and a constant
  omega; here that is ``configs/trainers/Nemesis/*_fp*.yaml`` (PAN_A 50, SCHEDULE constant), not a dataset test.
- ``PRE_INFERENCE``: False is the code's ``NP="randomK"`` ablation (NP random positions always penalised).
- ``A, NP, CW, BETA`` default to None in the code (the trainer crashes unless they are set); here they have working
  defaults: PUN with A = 1 (the published settings are listed in ``docs/NEMESIS.md``).
- Kept as in the code: norms are not squared; the comparison is strict; positions are redrawn every step, with no
  memory; with CSC the norms are summed over classes and divided by the number of positions.
  The position generator is local (``torch.Generator`` seeded from ``SEED``, saved in checkpoints), so a resumed
  run draws the same positions and the global RNG stream is the base method's.
- With BASE cocoop (no released code), pre-inference rescales the learned ``ctx`` before the image-conditioned
  shift is added, the same vector the penalty and the corruption study act on.

Every epoch ``metrics.jsonl`` gets ``ctx_norm_<j>`` (L2 norm of position j, averaged over classes with CSC),
``ctx_norm_mean``, ``ctx_norm_fro`` (the code's ``matrix_norm``), ``omega``, ``pan_flag_rate_<j>`` (share of the
tests of position j that flagged it) and, with ``EVAL_EACH_EPOCH``, ``test_acc`` (the code's ``--do-test``; it writes
no ``results.json``). With ``A 0`` (and PAN_A <= 0) the run is exactly the base method plus this logging: the
baseline of the Low-Norm figures (``python -m tools.nemesis_plots``).
"""
from __future__ import annotations

import functools
import logging
from typing import Dict, Tuple

import torch

from engine import TRAINER_REGISTRY
from engine.utils import get_rng_state, set_rng_state

from .base import PromptTrainer
from .facts import (FewshotRule, MethodFacts, OfficialConfig, ProtocolDefaults, coop_fewshot_rule,
                    official_configs)
from .nemesis_loss import (SCHEDULES, flagged_rate, frobenius, mean_position_norms, norm_order, omega, pan_flags,
                           pan_loss, pun_loss, rescaled_variants, sample_positions)
from .nemesis_pan import BatchedTextScorer, SwappedContextScorer

logger = logging.getLogger(__name__)

BASES = {"coop": "CoOp", "cocoop": "CoCoOp"}  # TRAINER.NEMESIS.BASE -> registered base trainer
RNG_KEY = "nemesis_position_rng"
NEMESIS_FIXED_OMEGA = ("food101", "oxford_pets")  # the released CoOpNemesis forces omega 1, PAN scale 50 on these


def nemesis_fewshot_rule(stem: str) -> FewshotRule:
    """CoOp's recipe on ``{stem}``, except Food101 and OxfordPets, which take ``{stem}_fp`` (the ``*_fp*`` configs
    hold the released code's hard-wired omega = 1 and PAN scale 50 on those two datasets; docs/NEMESIS.md)."""
    coop, fixed = coop_fewshot_rule(stem), coop_fewshot_rule(f"{stem}_fp")
    return lambda shots, dataset: (fixed if dataset in NEMESIS_FIXED_OMEGA else coop)(shots, dataset)


def nemesis_reported() -> Dict[str, Tuple[str, ...]]:
    """Nemesis configs -> the names of the Nemesis README tables (``_aN``: loss weight A = ω = N, default 1)."""
    names: Dict[str, Tuple[str, ...]] = {}
    for variant in ("pun", "pan"):
        name = f"Nemesis-{variant.upper()}"
        names[f"rn50_{variant}"] = names[f"rn50_{variant}_fp"] = (f"CoOp+{name}", f"CoOp+{name} (ω=1)")
        names[f"rn50_{variant}_a10"] = (f"CoOp+{name} (ω=10)",)
        for omega, suffix in ((1, ""), (10, "_a10"), (20, "_a20")):
            names[f"vit_b16_c4_ep10_batch1_ctxv1_{variant}{suffix}"] = (f"CoCoOp+{name} (ω={omega})",)
    return names


def released_nemesis_configs() -> Dict[str, OfficialConfig]:
    """The released ``CoOpNemesis`` configs (CoOp's recipes; the penalty's settings are the trainer's arguments) and
    their PUN counterparts here; the ones without a counterpart are backbones and context variants of CoOp's that
    the paper's experiments (docs/NEMESIS.md) do not run."""
    mapped = {"rn50": "rn50_pun", "rn50_ep50": "rn50_pun_ep50", "rn50_ep100": "rn50_pun_ep100",
              "vit_b16_ep50": "vit_b16_pun_ep50"}
    out = official_configs("ShyFoo/Nemesis", "CoOpNemesis", "", (
        "rn101 rn101_ep50 rn50_ctxv1 rn50_ep100_ctxv1 rn50_ep50_ctxv1 rn50_val vit_b16 vit_b16_ctxv1 vit_b16_ep100 "
        "vit_b16_ep100_ctxv1 vit_b16_ep50_ctxv1 vit_b32 vit_b32_ep50").split(),
        why_not="CoOp's backbone or context variant, copied with the release; no experiment of the paper runs it")
    out.update(official_configs("ShyFoo/Nemesis", "CoOpNemesis", "Nemesis", mapped))
    for name, ours in mapped.items():
        out[f"CoOpNemesis/{name}.yaml"] = OfficialConfig(out[f"CoOpNemesis/{name}.yaml"].source, f"Nemesis/{ours}")
    return out


def base_trainer(base: str):
    """The registered trainer class that ``TRAINER.NEMESIS.BASE`` names."""
    if base not in BASES:
        raise ValueError(f'TRAINER.NEMESIS.BASE is "{base}"; choose one of {", ".join(BASES)}.')
    name = BASES[base]
    if name not in TRAINER_REGISTRY:
        raise ValueError(f"TRAINER.NEMESIS.BASE {base} needs the {name} trainer, which is not registered in this "
                         f"checkout (expected trainers/{base}.py).")
    return TRAINER_REGISTRY.get(name)


@functools.lru_cache(maxsize=None)
def nemesis_on(base: type) -> type:
    """The trainer class ``Nemesis<Base>``: Nemesis's penalty over ``base``'s prompts, logits and loss."""
    return type(f"Nemesis{base.__name__}", (NemesisTrainer, base),
                {"__module__": __name__, "BASE_TRAINER": base,
                 "__doc__": f"Nemesis over {base.__name__} (see trainers/nemesis.py)."})


@TRAINER_REGISTRY.register("Nemesis")
class NemesisTrainer(PromptTrainer):
    BASE_TRAINER = None  # the base trainer class, set on each Nemesis<Base> class by nemesis_on
    FACTS = MethodFacts(
        protocol=ProtocolDefaults("vit_b16_c4_ep10_batch1_ctxv1_pun", transfer="rn50_pun_ep50",
                                  fewshot=nemesis_fewshot_rule("rn50_pun"), reported_for=nemesis_reported()),
        toy_config="configs/trainers/Nemesis/toy.yaml",
        prec_node="COOP",  # the default BASE coop's node
        released="trainers.released.drop_class_buffers",
        paper="Fu et al., ICLR 2024 (Nemesis: normalizing the soft-prompt vectors)",
        official_code="ShyFoo/Nemesis trainers/coop_nemesis.py:CoOpNemesis",
        docs="docs/NEMESIS.md",
        official_configs=released_nemesis_configs(),
    )

    def __new__(cls, cfg, *args, **kwargs):
        if cls is NemesisTrainer:
            cls = nemesis_on(base_trainer(cfg.TRAINER.NEMESIS.BASE))
        return super().__new__(cls)

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.NEMESIS = CN()
        cfg.TRAINER.NEMESIS.BASE = "coop"  # base method: coop or cocoop (its prompt keys: TRAINER.COOP / COCOOP)
        cfg.TRAINER.NEMESIS.A = 1.0  # PUN weight, "omega" in the README tables (published: 1, 10, 20); 0 = off
        cfg.TRAINER.NEMESIS.PAN_A = -1.0  # PAN scale; negative = A (the code hard-wired 50 on Food101/OxfordPets)
        cfg.TRAINER.NEMESIS.BETA = 1.0  # mix: 1 = PUN only, 0 = PAN only, between: beta PUN + (1 - beta) PAN
        cfg.TRAINER.NEMESIS.NORM = "two"  # p of ||P_j||_p (not squared): two, one or inf (the code's NT)
        cfg.TRAINER.NEMESIS.NP = 4  # positions tested per step by PAN's pre-inference (1 .. N_CTX)
        cfg.TRAINER.NEMESIS.CW = 0.5  # RESCALE factor applied to each tested position in pre-inference
        cfg.TRAINER.NEMESIS.PRE_INFERENCE = True  # False: penalise NP random positions untested (code's "randomK")
        cfg.TRAINER.NEMESIS.SCHEDULE = "logistic"  # omega(t): logistic decay (code) or constant 1 (paper)
        cfg.TRAINER.NEMESIS.SCHEDULE_K = 0.2  # steepness k of the logistic decay (midpoint MAX_EPOCH / 2)
        cfg.TRAINER.NEMESIS.PAN_CHUNK = 1024  # most prompts per text-encoder call in pre-inference (memory bound)
        cfg.TRAINER.NEMESIS.EVAL_EACH_EPOCH = False  # log test accuracy each epoch as test_acc (Low-Norm figures)

    @property
    def nemesis(self):
        return self.cfg.TRAINER.NEMESIS

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        n = cfg.TRAINER.NEMESIS
        norm_order(n.NORM)
        if n.SCHEDULE not in SCHEDULES:
            raise ValueError(f'TRAINER.NEMESIS.SCHEDULE is "{n.SCHEDULE}"; choose one of {", ".join(SCHEDULES)}.')
        if not 0.0 <= n.BETA <= 1.0:
            raise ValueError(f"TRAINER.NEMESIS.BETA is {n.BETA}; it mixes PUN and PAN and must lie in [0, 1].")
        if n.A < 0:
            raise ValueError(f"TRAINER.NEMESIS.A is {n.A}; the loss weight must be >= 0 (0 switches PUN off).")
        if n.PAN_CHUNK < 1:
            raise ValueError(f"TRAINER.NEMESIS.PAN_CHUNK is {n.PAN_CHUNK}; it must be at least 1.")

    # ---- construction --------------------------------------------------------------------------------------
    def build_model(self):
        super().build_model()
        learner = self.prompt_learner
        if not isinstance(getattr(learner, "ctx", None), torch.nn.Parameter):
            raise ValueError(f"Nemesis penalises a learned context, but the {type(learner).__name__} of "
                             f"TRAINER.NEMESIS.BASE {self.nemesis.BASE} has no `ctx` parameter.")
        self.n_ctx = learner.ctx.shape[-2]
        if self.uses_pan and not 1 <= self.nemesis.NP <= self.n_ctx:
            raise ValueError(f"TRAINER.NEMESIS.NP is {self.nemesis.NP}; PAN tests between 1 and the number of "
                             f"context vectors ({self.n_ctx}) positions per step.")
        batched = hasattr(learner, "assemble") and not self.IMAGE_CONDITIONED_TEXT
        self.pan_scorer = BatchedTextScorer(self, self.nemesis.PAN_CHUNK) if batched else SwappedContextScorer(self)
        self.position_rng = torch.Generator()
        if self.cfg.SEED >= 0:
            self.position_rng.manual_seed(self.cfg.SEED)
        else:
            self.position_rng.seed()
        self._pan_tested = torch.zeros(self.n_ctx, dtype=torch.long)
        self._pan_flagged = torch.zeros(self.n_ctx, dtype=torch.long)
        logger.info("Nemesis over %s: A=%g, PAN_A=%g, BETA=%g, NORM=%s, NP=%d, CW=%g, schedule %s",
                    self.BASE_TRAINER.__name__, self.nemesis.A, self.pan_scale, self.nemesis.BETA,
                    self.nemesis.NORM, self.nemesis.NP, self.nemesis.CW, self.nemesis.SCHEDULE)

    @property
    def pan_scale(self) -> float:
        n = self.nemesis
        return n.A if n.PAN_A < 0 else n.PAN_A

    @property
    def uses_pun(self) -> bool:
        return self.nemesis.BETA > 0 and self.nemesis.A > 0

    @property
    def uses_pan(self) -> bool:
        return self.nemesis.BETA < 1 and self.pan_scale > 0

    # ---- the penalty -----------------------------------------------------------------------------------------
    def omega(self) -> float:
        return omega(self.epoch, self.max_epoch, self.nemesis.SCHEDULE, self.nemesis.SCHEDULE_K)

    def flag_positions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Pre-inference: the positions ``[M]`` (bool) PAN penalises on this batch."""
        n = self.nemesis
        positions = sample_positions(self.n_ctx, n.NP, self.position_rng)
        self._pan_tested[positions] += 1
        if not n.PRE_INFERENCE:
            flagged = torch.zeros(self.n_ctx, dtype=torch.bool)
            flagged[positions] = True
        else:
            variants = rescaled_variants(self.prompt_learner.ctx, positions, n.CW)
            flagged = pan_flags(self.pan_scorer.correct(images, labels, variants), positions, self.n_ctx)
        self._pan_flagged += flagged.long()
        return flagged

    def compute_loss(self, images: torch.Tensor, labels: torch.Tensor):
        """The base method's loss plus ``omega(t) * (beta * PUN + (1 - beta) * PAN)``; terms logged by name."""
        loss, logits, terms = super().compute_loss(images, labels)
        if not (self.uses_pun or self.uses_pan):
            return loss, logits, terms
        n, ctx = self.nemesis, self.prompt_learner.ctx
        weight = self.omega()
        penalty = 0.0
        if self.uses_pun:
            pun = pun_loss(ctx, n.A, n.NORM)
            penalty = penalty + n.BETA * pun
            terms["pun"] = pun
        if self.uses_pan:
            flagged = self.flag_positions(images, labels)
            pan = pan_loss(ctx, flagged.to(ctx.device), self.pan_scale, n.NORM)
            penalty = penalty + (1 - n.BETA) * pan
            terms["pan"] = pan
            terms["pan_flagged"] = float(flagged.sum())
        return loss + weight * penalty, logits, terms

    # ---- logging ---------------------------------------------------------------------------------------------
    def before_epoch(self):
        super().before_epoch()
        self._pan_tested.zero_()
        self._pan_flagged.zero_()

    def epoch_metrics(self) -> dict:
        out = dict(super().epoch_metrics())
        ctx = self.prompt_learner.ctx
        norms = mean_position_norms(ctx, "two")
        out.update({f"ctx_norm_{j}": float(v) for j, v in enumerate(norms)})
        out["ctx_norm_mean"] = float(norms.mean())
        out["ctx_norm_fro"] = frobenius(ctx)
        out["omega"] = self.omega()
        if self.uses_pan:
            rate = flagged_rate(self._pan_flagged, self._pan_tested)
            out.update({f"pan_flag_rate_{j}": float(v) for j, v in enumerate(rate)})
        if self.nemesis.EVAL_EACH_EPOCH:
            out["test_acc"] = self.test_accuracy()
        return out

    @torch.no_grad()
    def test_accuracy(self) -> float:
        """Top-1 accuracy (%) on the test split, without writing ``results.json`` or moving the global RNGs."""
        rng = get_rng_state()
        self.set_model_mode("eval")
        self.before_test()
        correct = total = 0
        for logits, labels in self.evaluation_outputs(self.test_loader):
            correct += int((logits.argmax(dim=-1) == labels).sum())
            total += labels.numel()
        self.after_test()
        self.set_model_mode("train")
        set_rng_state(rng)
        return 100.0 * correct / max(total, 1)

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def extra_checkpoint_state(self, name: str) -> dict:
        state = dict(super().extra_checkpoint_state(name))
        if name == self.MODEL_NAME:
            state[RNG_KEY] = self.position_rng.get_state()
        return state

    def load_extra_checkpoint_state(self, name: str, checkpoint: dict) -> None:
        super().load_extra_checkpoint_state(name, checkpoint)
        if name == self.MODEL_NAME and RNG_KEY in checkpoint:
            self.position_rng.set_state(checkpoint[RNG_KEY].cpu())
