"""Shared helpers for the official fp16 golden runs (``gen_fp16_<case>.py``; format: README "fp16 fixtures").

The official code runs in fp16 on CPU: the tiny CLIP is built with the official ``clip.model.build_model`` (which
calls ``convert_weights``), nothing is cast back to fp32. Patches are kept to what a CPU run on the tiny CLIP needs
and are applied to copies of ``$OFFICIAL_TREES/<name>`` under ``$GOLDEN_SCRATCH/fp16_trees`` (``patched_tree``);
each is listed in the fixture's ``provenance``.

API (stable): ``patched_tree(name, patches) -> path``, ``import_official(paths)``, ``official_clip(build_model,
design=None)``, ``perturb(named_params, seed)``, ``StepRecorder(trainer_or_optim, named_params)``,
``dassl_cfg(node, keys, optim)``, ``environment()``, ``unchanged_fraction(before, after)``, ``save_fixture(case, d)``.
"""
import importlib.machinery as _im
import os
import shutil
import subprocess
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_common import GOLDEN, clip_state_dict  # noqa: E402

OFF = os.environ.get("OFFICIAL_TREES", "off")
SCRATCH = os.environ.get("GOLDEN_SCRATCH", "scratch")
OUT = os.path.join(GOLDEN, "fp16")

# Dassl.pytorch: torch >= 2.7 dropped LRScheduler's `verbose` argument (the fp32 goldens' official_dassl.patch)
DASSL_PATCHES = [("dassl/optim/lr_scheduler.py", "super().__init__(optimizer, last_epoch, verbose)",
                  "super().__init__(optimizer, last_epoch)")]


def patched_tree(name, patches=()):
    """A fresh copy of ``$OFFICIAL_TREES/<name>`` with ``patches`` applied: ``(file, old, new)``, each ``old``
    found exactly once. Returns the copy's path."""
    dst = os.path.join(SCRATCH, "fp16_trees", name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(OFF, name), dst)
    for rel, old, new in patches:
        path = os.path.join(dst, rel)
        text = open(path).read()
        assert text.count(old) == 1, (rel, old, text.count(old))
        open(path, "w").write(text.replace(old, new))
    return dst


def describe(name, patches):
    return [f"{name}/{rel}: {old!r} -> {new!r}" for rel, old, new in patches]


def import_official(paths):
    """Put the official trees first on ``sys.path`` and stub what a CPU run does not use (tensorboard, pandas,
    wilds: imported by Dassl at module level)."""
    sys.path[:0] = list(paths)
    tb = types.ModuleType("torch.utils.tensorboard")

    class SummaryWriter:
        def __init__(self, *a, **k):
            pass

        def add_scalar(self, *a, **k):
            pass

        def close(self):
            pass

    tb.SummaryWriter = SummaryWriter
    sys.modules["torch.utils.tensorboard"] = tb
    for n in ("pandas", "wilds"):
        m = types.ModuleType(n)
        m.__spec__ = _im.ModuleSpec(n, None)
        m.get_dataset = None
        sys.modules[n] = m


def official_clip(build_model, design=None):
    """The tiny CLIP through the official ``build_model`` (fp16 by its ``convert_weights``), in eval mode."""
    sd = clip_state_dict()
    model = build_model(sd) if design is None else build_model(sd, design)
    return model.eval()


def perturb(named_params, seed):
    """Move every trainable tensor from its official init by seeded noise of std ``0.5 * std(p)`` (drawn in fp32,
    added in the parameter's dtype), so that the context stays at CoOp's N(0, 0.02) scale where fp16's ulp matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(named_params.items()):
            std = 0.5 * float(p.float().std()) if p.numel() > 1 else 0.01
            p.add_((std * torch.randn(p.shape, generator=g)).to(p.dtype))


def dassl_cfg(get_cfg_default, node, keys, optim):
    """Dassl's default config with ``TRAINER.<node>`` holding ``keys`` and ``OPTIM`` overridden by ``optim``."""
    from yacs.config import CfgNode as CN

    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (32, 32)
    cfg.TRAINER[node] = CN()
    for k, v in keys.items():
        cfg.TRAINER[node][k] = v
    for k, v in optim.items():
        cfg.OPTIM[k] = v
    cfg.TRAIN.PRINT_FREQ = 1
    return cfg


class StepRecorder:
    """Records, at every ``optimizer.step()``: the LR, the gradients, then the parameters after the step."""

    def __init__(self, optim, named_params):
        self.optim, self.params, self.steps = optim, dict(named_params), []
        step = optim.step

        def recorded_step(*a, **k):
            rec = {"lr": float(optim.param_groups[0]["lr"]),
                   "grads": {n: p.grad.detach().clone() for n, p in self.params.items()}}
            out = step(*a, **k)
            rec["params"] = {n: p.detach().clone() for n, p in self.params.items()}
            self.steps.append(rec)
            return out

        optim.step = recorded_step

    def optim_state(self):
        return {n: {"momentum_buffer": self.optim.state[p]["momentum_buffer"].detach().clone()}
                for n, p in self.params.items()}


def optim_settings(optim):
    g = optim.param_groups[0]
    return {"name": "sgd", "lr": float(g["initial_lr"] if "initial_lr" in g else g["lr"]),
            "momentum": float(g["momentum"]), "weight_decay": float(g["weight_decay"]),
            "dampening": float(g["dampening"]), "nesterov": bool(g["nesterov"])}


def unchanged_fraction(before, after):
    return float((before == after).float().mean())


def environment():
    return {"torch": str(torch.__version__), "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}


def official_commit(name):
    """The commit of the official tree, when ``$OFFICIAL_TREES/<name>`` records one (a ``COMMIT`` file or git)."""
    path = os.path.join(OFF, name)
    if os.path.isfile(os.path.join(path, "COMMIT")):
        return open(os.path.join(path, "COMMIT")).read().strip()
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_fixture(case, data):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{case}.pt")
    torch.save(data, path)
    return path


class RecordingF:
    """``torch.nn.functional`` with ``cross_entropy`` recording its input logits and its loss (installed as the
    official trainer module's ``F``; nothing else changes)."""

    def __init__(self, functional, sink):
        self._f, self._sink = functional, sink

    def __getattr__(self, name):
        return getattr(self._f, name)

    def cross_entropy(self, logits, label, *a, **k):
        loss = self._f.cross_entropy(logits, label, *a, **k)
        self._sink.append({"logits": logits.detach().clone(), "loss": loss.detach().clone()})
        return loss


OPTIM_KEYS = ("NAME", "LR", "MAX_EPOCH", "LR_SCHEDULER", "WARMUP_EPOCH", "WARMUP_TYPE", "WARMUP_CONS_LR", "MOMENTUM",
              "WEIGHT_DECAY", "SGD_DAMPNING", "SGD_NESTEROV")


def official_run(module, trainer_cls, cfg, classnames, batches, eval_batch, seed, noise_seed):
    """Run the official trainer ``trainer_cls`` (its own ``build_model``, Dassl's ``build_optimizer`` /
    ``build_lr_scheduler`` and ``TrainerX.run_epoch``) for ``len(batches)`` epochs of one batch each.

    The trainer is built without Dassl's data manager (``dm.dataset.classnames`` only) and without the per-epoch
    checkpoint/test of ``after_epoch``; ``module.load_clip_to_cpu`` must already return the fp16 official CLIP.
    Returns ``(trainer, trainable, params0, steps, optim_state)``.
    """
    from types import SimpleNamespace

    from dassl.engine.trainer import TrainerBase

    t = trainer_cls.__new__(trainer_cls)
    TrainerBase.__init__(t)
    t.cfg, t.device = cfg, torch.device("cpu")
    t.start_epoch = t.epoch = 0
    t.max_epoch = cfg.OPTIM.MAX_EPOCH
    t.output_dir = os.path.join(SCRATCH, "fp16_runs")
    t.dm = SimpleNamespace(dataset=SimpleNamespace(classnames=list(classnames)))
    torch.manual_seed(seed)
    t.build_model()
    trainable = {n: p for n, p in t.model.named_parameters() if p.requires_grad}
    perturb(trainable, noise_seed)
    params0 = {n: p.detach().clone() for n, p in trainable.items()}
    sink = []
    module.F = RecordingF(module.F, sink)
    rec = StepRecorder(t.optim, trainable)
    for t.epoch, (images, labels) in enumerate(batches):
        t.train_loader_x = [{"img": images, "label": labels}]
        t.run_epoch()
    assert len(sink) == len(rec.steps) == len(batches), (len(sink), len(rec.steps))
    steps = []
    for (images, labels), r, s in zip(batches, rec.steps, sink):
        steps.append({"images": images, "labels": labels, "lr": r["lr"], "loss": s["loss"], "loss_terms": {},
                      "logits": s["logits"], "grads": r["grads"], "params": r["params"]})
    t.model.eval()
    with torch.no_grad():
        eval_logits = t.model_inference(eval_batch[0])
    return t, trainable, params0, steps, rec.optim_state(), eval_logits


def fixture_dict(case, method, repo, file, commit, provenance, cfg, node, classnames, eval_batch, trainable, params0,
                 steps, optim_state, optim, eval_logits, ctx_name="prompt_learner.ctx"):
    config = {f"TRAINER.{node}.{k}": v for k, v in cfg.TRAINER[node].items()}
    config.update({f"OPTIM.{k}": cfg.OPTIM[k] for k in OPTIM_KEYS})
    out = {"case": case, "method": method, "official_repo": repo, "official_file": file, "official_commit": commit,
           "provenance": provenance, "environment": environment(), "config": config, "classnames": list(classnames),
           "images": eval_batch[0], "labels": eval_batch[1], "params0": params0,
           "param_dtypes": {n: str(p.dtype) for n, p in trainable.items()}, "steps": steps,
           "optim_state": optim_state, "optim": optim, "eval_logits": eval_logits.detach().clone()}
    if cfg.OPTIM.WARMUP_EPOCH > 0:
        out["frozen_changed_elements_warmup"] = unchanged_fraction(params0[ctx_name], steps[0]["params"][ctx_name])
    return out


def batches_for(n_steps, n_cls, first_seed=100, batch=4):
    """Per-step ``(images [B,3,32,32] fp32 holding fp16 values, labels [B])``: the official model casts images to
    fp16 (``image.type(self.dtype)``), so that cast is exact."""
    from golden_common import images_and_labels

    out = []
    for i in range(n_steps + 1):
        images, labels = images_and_labels(first_seed + i, batch, n_cls)
        out.append((images.half().float(), labels))
    return out[:-1], out[-1]
