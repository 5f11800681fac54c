"""fp16 golden tests: ``PREC fp16`` against short runs of the OFFICIAL code in fp16 on CPU (tests/data/golden/fp16).

Each fixture (format: ``tests/data/golden/README.md``, "fp16 fixtures") holds the official trainable tensors at the
start, and per optimiser step the LR, the train-mode logits and loss, the gradients and the parameters after the
step, then the optimiser state and eval-mode logits. A trajectory in fp16 is dominated by kernel choice (the
project's open_clip blocks and the official ``clip/model.py`` round differently), so the arithmetic is pinned where
it is decided, on a trainer built as a user builds it (``PREC fp16``, ``MODEL.HALF_ON_CPU True``):

(a) the dtype of every trainable tensor and of the SGD momentum buffers equals the official one;
(b) replaying the project's optimiser from the recorded gradients and LRs reproduces the recorded parameters and the
    final momentum buffers bit for bit (fp16 parameters stepped in place, no master copy, no loss scaling);
(c) the warm-up step (LR 1e-5) of the trainer's own ``forward_backward`` leaves the official fraction of the context
    unchanged, within ``WARMUP_TOLERANCE`` (fp16 rounding swallows updates below half an ulp; with fp32 master weights
    no element stays put);
plus, as a sanity bound, the losses and logits of every step (from the recorded parameters) and the eval logits within
``LOGIT_ULPS`` fp16 ulps of max|expected| (see ``fp16_tolerance``).

(a)-(c) must FAIL with ``MASTER_WEIGHTS fp32`` (``test_master_weights_fp32_is_not_the_official_arithmetic``).
Every case in ``CASES`` must have its file: a missing fixture fails, naming the generator that makes it.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from tests.test_golden import Golden, load_params, memoised_clip_one_thread, project_name, project_tensor

FP16 = Path(__file__).resolve().parent / "data" / "golden" / "fp16"
# case -> (project trainer, config node, generator)
CASES = {
    "coop": ("CoOp", "COOP", "gen_fp16_coop.py coop"),
    "cocoop": ("CoCoOp", "COCOOP", "gen_fp16_coop.py cocoop"),
    "maple": ("MaPLe", "MAPLE", "gen_fp16_maple.py"),
    "restore": ("RESTORE", "RESTORE", "gen_fp16_restore.py"),
    "lamm_coop": ("LAMM", "LAMM", "gen_fp16_lamm.py"),
    "nemesis": ("Nemesis", "COOP", "gen_fp16_nemesis.py"),
}
FP16_ULP_AT_1 = 2.0 ** -10  # spacing of fp16 numbers in [1, 2)
LOGIT_ULPS = 32  # measured worst case 12.2 ulps (RESTORE; 7.5 elsewhere, README "fp16 fixtures"), x 2.6 headroom
WARMUP_TOLERANCE = 0.03  # |fraction - official|: measured <= 0.008 (README "fp16 fixtures"), x ~4 headroom
ARITHMETIC = ("param_dtypes", "replay_params", "replay_optim_state", "warmup_unchanged")


@functools.lru_cache(maxsize=None)
def fixture(case: str) -> dict:
    path = FP16 / f"{case}.pt"
    if not path.is_file():
        pytest.fail(f"{path} is missing: generate it with tests/data/golden/make/{CASES[case][2]} (README, "
                    "'fp16 fixtures').")
    return torch.load(path, map_location="cpu", weights_only=True)


def ulp(expected: torch.Tensor) -> float:
    """The spacing of fp16 numbers at max|expected|."""
    top = max(float(torch.as_tensor(expected).detach().abs().max().float()), 2.0 ** -14)
    return FP16_ULP_AT_1 * 2.0 ** torch.tensor(top).log2().floor().item()


def fp16_tolerance(quantity: str, expected: torch.Tensor, step: dict) -> float:
    """Logits: ``LOGIT_ULPS`` fp16 ulps at max|expected|. Every fp16 op rounds its output to half an ulp, and two
    correct fp16 implementations (the official ``clip/model.py`` and open_clip's blocks: other attention and
    LayerNorm kernels) differ by about an ulp per rounding; the cosines reach the logits through the head's fp16
    normalisation and the scale ``s = 100``, so the difference is a few ulps of the logits (measured <= 12.2).
    Loss: the cross-entropy's gradient w.r.t. the logits has an l1 norm <= 2, so ``|d loss| <= 2 max|d z|``: twice
    the logits' tolerance of the same step, plus one ulp of the loss's own fp16 rounding."""
    if quantity.startswith("loss"):
        return 2 * fp16_tolerance("logits", step["logits"], step) + ulp(expected)
    return LOGIT_ULPS * ulp(expected)


# official TRAINER.<node>.<key> -> the project's key, for the official nodes whose keys differ (test_golden.py's maps)
RENAMED_KEYS = {
    "MAPLE_FSA": {k: f"TRAINER.RESTORE.{k}" for k in ("N_CTX", "CTX_INIT", "PROMPT_DEPTH", "TEXT_CALIB_R",
                                                       "VIS_CALIB_R", "FS_LOSS_R")},
    "CoOpNemesis": {**{k: f"TRAINER.COOP.{k}" for k in ("N_CTX", "CSC", "CTX_INIT", "CLASS_TOKEN_POSITION")},
                    **{k: f"TRAINER.NEMESIS.{k}" for k in ("A", "BETA", "NP", "CW")}, "NT": "TRAINER.NEMESIS.NORM"},
}


def project_opts(case: str, fx: dict, master_weights: str) -> List[str]:
    """The project's keys for the fixture's official ones: ``OPTIM.*`` and ``TRAINER.<NODE>.*`` by the same names
    (``RENAMED_KEYS`` for RESTORE and Nemesis); ``PREC`` is ``fp16`` with ``MASTER_WEIGHTS`` as asked."""
    trainer, node, _ = CASES[case]
    opts = []
    for key, value in fx["config"].items():
        parts = key.split(".")
        if parts[0] == "OPTIM":
            opts += [key, str(value)]
        elif parts[0] == "TRAINER" and parts[1] in RENAMED_KEYS:
            if parts[2] in RENAMED_KEYS[parts[1]]:
                opts += [RENAMED_KEYS[parts[1]][parts[2]], str(value)]
        elif parts[0] == "TRAINER" and parts[1] == node and parts[2] not in ("PREC", "MASTER_WEIGHTS"):
            opts += [key, str(value)]
    optim = fx["optim"]
    opts += ["OPTIM.NAME", "sgd", "OPTIM.LR", str(optim["lr"]), "OPTIM.MOMENTUM", str(optim["momentum"]),
             "OPTIM.WEIGHT_DECAY", str(optim["weight_decay"]), "OPTIM.SGD_DAMPNING", f'{optim["dampening"]:g}',
             "OPTIM.SGD_NESTEROV", str(optim["nesterov"])]
    if case == "lamm_coop":
        opts += ["TRAINER.LAMM.BASE", "coop"]
    return opts + [f"TRAINER.{node}.PREC", "fp16", f"TRAINER.{node}.MASTER_WEIGHTS", master_weights,
                   "MODEL.HALF_ON_CPU", "True"]


class Env(Golden):
    """The golden environment (tiny CLIP, generated datasets) with per-(case, MASTER_WEIGHTS) results."""

    def build(self, case: str, master_weights: str):
        fx = fixture(case)
        trainer, _, _ = CASES[case]
        return self.trainer(f"fp16_{case}_{master_weights}", trainer, fx["classnames"],
                            project_opts(case, fx, master_weights))

    def result(self, case: str, master_weights: str) -> Dict[str, object]:
        key = f"{case}/{master_weights}"
        if key not in self.results:
            self.results[key] = compute(self, case, master_weights)
        return self.results[key]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with memoised_clip_one_thread():
        yield Env(tmp_path_factory.mktemp("fp16_golden"))


# ---- the computations ----------------------------------------------------------------------------------------------
def method_of(case: str) -> str:
    return CASES[case][0]


def tensor(t, case: str, official: str) -> torch.Tensor:
    return project_tensor(t, project_name(method_of(case), official))


def step_batch(fx: dict, i: int):
    """Step ``i``'s ``(images, labels)``: its own, or the fixture's when every step used the same batch."""
    step = fx["steps"][i]
    return (step["images"], step["labels"]) if "images" in step else (fx["images"], fx["labels"])


def optimisers(t) -> List[torch.optim.Optimizer]:
    return [o for o in t._optims.values() if o is not None]


def bit_equal(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    return actual.dtype == expected.dtype and torch.equal(actual.detach().reshape(expected.shape), expected)


def replay(t, case: str) -> Dict[str, object]:
    """Load ``params0``, then per step set the recorded gradients and LR and call the project's ``optimizer.step()``;
    compare each step's parameters and the final momentum buffers with the official ones, bit for bit."""
    fx = fixture(case)
    load_params(t, method_of(case), fx["params0"])
    params = {n: tensor(t, case, n) for n in fx["params0"]}
    mismatches = []
    for i, step in enumerate(fx["steps"]):
        for optim in optimisers(t):
            optim.zero_grad(set_to_none=True)
            for group in optim.param_groups:
                group["lr"] = step["lr"]
        for n, g in step["grads"].items():
            params[n].grad = g.to(params[n].dtype).reshape(params[n].shape)
        for optim in optimisers(t):
            optim.step()
        mismatches += [f"step {i}: {n}" for n, p in step["params"].items() if not bit_equal(params[n], p)]
    state = {}
    for optim in optimisers(t):
        state.update({id(p): s for p, s in optim.state.items()})
    buffers = [f"{n}: {state[id(params[n])]['momentum_buffer'].dtype}"
               for n, s in fx["optim_state"].items() if not bit_equal(state[id(params[n])]["momentum_buffer"],
                                                                      s["momentum_buffer"])]
    return {"replay_params": mismatches, "replay_optim_state": buffers}


def schedule_lrs(t, n_steps: int) -> List[float]:
    """The LR of each step under the project's schedule (one batch per epoch, as the official runs)."""
    lrs = []
    for _ in range(n_steps):
        lrs.append(optimisers(t)[0].param_groups[0]["lr"])
        t._lr_stepped_this_epoch = False
        t.update_lr()
    return lrs


def warmup_unchanged(t, case: str, ctx: str = "prompt_learner.ctx") -> float:
    """Fraction of ``ctx`` unchanged by the trainer's own first ``forward_backward`` (warm-up LR) from ``params0``."""
    fx = fixture(case)
    load_params(t, method_of(case), fx["params0"])
    before = tensor(t, case, ctx).detach().clone()
    t.set_model_mode("train")
    t.batch_idx, t.num_batches = 0, 1
    images, labels = step_batch(fx, 0)
    t.forward_backward({"img": images, "label": labels})
    return float((tensor(t, case, ctx).detach() == before).float().mean())


@contextlib.contextmanager
def official_state(t, case: str):
    """What the official run fixed besides parameters and inputs: Nemesis' epoch (for omega) and its PAN positions
    (``random.sample`` patched in the official run, ``trainers.nemesis.sample_positions`` here)."""
    fx = fixture(case)
    with pytest.MonkeyPatch.context() as mp:
        if CASES[case][0] == "Nemesis":
            import trainers.nemesis as nemesis

            positions = fx["config"]["positions (random.sample patched)"]
            mp.setattr(nemesis, "sample_positions", lambda n_ctx, n, gen: torch.tensor(positions[:n]))
            t.epoch, t.max_epoch = fx["config"]["epoch"], fx["config"]["OPTIM.MAX_EPOCH"]
        yield


def step_outputs(t, case: str) -> Dict[str, tuple]:
    """Per step: train-mode loss and logits from the parameters the official step started from; then eval logits."""
    with official_state(t, case):
        return _step_outputs(t, case)


def _step_outputs(t, case: str) -> Dict[str, tuple]:
    fx = fixture(case)
    out = {}
    start = fx["params0"]
    for i, step in enumerate(fx["steps"]):
        load_params(t, method_of(case), start)
        t.set_model_mode("train")
        with torch.no_grad():
            loss, logits, _ = t.compute_loss(*step_batch(fx, i))
        out[f"loss[{i}]"] = (loss, step["loss"])
        out[f"logits[{i}]"] = (logits, step["logits"])
        start = step["params"]
    load_params(t, method_of(case), start)
    t.set_model_mode("eval")
    with torch.no_grad():
        out["eval_logits"] = (t.logits(fx["images"]), fx["eval_logits"])
    return out


def compute(env: Env, case: str, master_weights: str) -> Dict[str, object]:
    fx = fixture(case)
    t = env.build(case, master_weights)
    res: Dict[str, object] = {
        "trainable": sorted(project_name(method_of(case), n) for n in fx["param_dtypes"]),
        "param_dtypes": {n: str(tensor(t, case, n).dtype) for n in fx["param_dtypes"]},
        "schedule_lrs": schedule_lrs(env.build(case, master_weights), len(fx["steps"])),
    }
    res.update(replay(t, case))
    if "frozen_changed_elements_warmup" in fx:
        res["warmup_unchanged"] = warmup_unchanged(env.build(case, master_weights), case)
    if master_weights == "fp16":
        res["outputs"] = step_outputs(env.build(case, master_weights), case)
    return res


# ---- the checks ----------------------------------------------------------------------------------------------------
def check(env: Env, case: str, master_weights: str, quantity: str) -> None:
    fx, res = fixture(case), env.result(case, master_weights)
    if quantity == "param_dtypes":
        assert res["param_dtypes"] == fx["param_dtypes"]
        assert {str(s["momentum_buffer"].dtype) for s in fx["optim_state"].values()} == \
            {d for n, d in fx["param_dtypes"].items() if n in fx["optim_state"]}
    elif quantity == "replay_params":
        assert res["replay_params"] == [], f"not bit-equal to the official step: {res['replay_params'][:5]}"
    elif quantity == "replay_optim_state":
        assert res["replay_optim_state"] == [], f"momentum buffers differ: {res['replay_optim_state'][:5]}"
    elif quantity == "warmup_unchanged":
        expected = fx["frozen_changed_elements_warmup"]
        assert expected > WARMUP_TOLERANCE, "the fixture's warm-up must leave part of the context unchanged"
        assert abs(res["warmup_unchanged"] - expected) <= WARMUP_TOLERANCE, \
            f"{res['warmup_unchanged']:.4f} of the context unchanged by the warm-up step, official {expected:.4f}"


def quantities(case: str) -> List[str]:
    if not (FP16 / f"{case}.pt").is_file():
        return ["fixture_present"]
    fx = fixture(case)
    # the multi-step runs went through Dassl's schedule; the one-step fixtures step at OPTIM.LR (their lr_note)
    names = ["trainable_names"] + (["schedule"] if len(fx["steps"]) > 1 else [])
    names += [q for q in ARITHMETIC if q != "warmup_unchanged"]
    if "frozen_changed_elements_warmup" in fx:
        names.append("warmup_unchanged")
    names += [f"loss[{i}]" for i in range(len(fx["steps"]))] + [f"logits[{i}]" for i in range(len(fx["steps"]))]
    return names + ["eval_logits"]


PARAMS = [(c, q) for c in CASES for q in quantities(c)]


@pytest.mark.parametrize("case,quantity", PARAMS, ids=[f"{c}-{q}" for c, q in PARAMS])
def test_official_fp16(env, case, quantity):
    fx = fixture(case)  # fails, naming the generator, when the file is missing
    res = env.result(case, "fp16")
    if quantity == "trainable_names":
        t = env.build(case, "fp16")
        own = sorted(f"surgery.{k}" if m == "surgery" else k
                     for m, mod in (("learner", t.prompt_learner), ("surgery", getattr(t, "surgery", None)))
                     if mod is not None for k, p in mod.named_parameters() if p.requires_grad)
        assert own == sorted(res["trainable"])
    elif quantity == "schedule":
        assert res["schedule_lrs"] == pytest.approx([s["lr"] for s in fx["steps"]], rel=1e-9)
    elif quantity in ARITHMETIC:
        check(env, case, "fp16", quantity)
    else:
        actual, expected = res["outputs"][quantity]
        actual = torch.as_tensor(actual).detach()
        expected = torch.as_tensor(expected)
        assert actual.dtype == expected.dtype, f"{quantity} is {actual.dtype}, official {expected.dtype}"
        err = float((actual.double() - expected.double()).abs().max())
        step = fx["steps"][int(quantity.split("[")[1][:-1])] if "[" in quantity else None
        tol = fp16_tolerance(quantity, expected, step)
        assert err <= tol, f"{quantity}: max error {err:.3g} > {tol:.3g} (fp16_tolerance)"


ARITH_PARAMS = [(c, q) for c in CASES for q in ARITHMETIC if q in quantities(c)]


@pytest.mark.xfail(strict=True, reason="fp32 master weights are not the official fp16 arithmetic")
@pytest.mark.parametrize("case,quantity", ARITH_PARAMS, ids=[f"{c}-{q}" for c, q in ARITH_PARAMS])
def test_master_weights_fp32_is_not_the_official_arithmetic(env, case, quantity):
    check(env, case, "fp32", quantity)
