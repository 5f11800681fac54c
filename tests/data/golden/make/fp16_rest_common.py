"""Shared helpers of the fp16 official generators for RESTORE, LAMM and Nemesis (gen_fp16_restore.py,
gen_fp16_lamm.py, gen_fp16_nemesis.py).

The official trees are expected UNPATCHED under $OFFICIAL_TREES/{restore,lamm,nem,dassl}: `git archive` of the
public repositories at the commits in COMMITS, e.g.
`git -C RESTORE_ archive <commit> | tar -x -C $OFFICIAL_TREES/restore`. The few patches these
runs need are applied in memory by `load_patched` (exact-text replacements, each asserted to match) and listed in the
fixture's `provenance`. Nothing is cast to float32: the tiny CLIP goes through the official `clip.model.build_model`
(`convert_weights`: fp16) and the trainable tensors keep the dtypes the official code gives them.

The optimiser is Dassl's own `build_optimizer` (KaiyangZhou/Dassl.pytorch, dassl/optim/optimizer.py), loaded from
$OFFICIAL_TREES/dassl under another package name so that the stub `dassl` the trainers import (make/dassl_stub/)
does not shadow it. Its config is Dassl's default `OPTIM` node (dassl/config/defaults.py) merged with the `OPTIM` node
of the official trainer yaml.
"""
import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

import torch
import yaml
from yacs.config import CfgNode as CN

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_common import GOLDEN, clip_state_dict  # noqa: E402

OFF = os.environ.get("OFFICIAL_TREES", "off")
OUT_DIR = os.path.join(GOLDEN, "fp16")
# HEAD of the public repositories the trees were archived from (git archive HEAD of the mirrors)
COMMITS = {"Yaphabates/RESTORE_": "4c64a17864ef45336958e4a8847dd96564519397",
           "gaojingsheng/LAMM": "d4e7d026726b08cc1b3fafc6db9813e282200f01",
           "ShyFoo/Nemesis": "991d6cd2f485a9639d27ea07656f7f9a2ce4bd8f",
           "KaiyangZhou/Dassl.pytorch": "c61a1b570ac6333bd50fb5ae06aea59002fb20bb"}
STUB_NOTE = ("dassl (engine/utils/metrics/optim) is the stub make/dassl_stub/ for the trainer files' imports; "
             "tqdm is stubbed (only used in evaluation loops); the optimiser is the real Dassl build_optimizer")


def install_stubs(tree):
    """Put the official `tree` first on sys.path and register the dassl and tqdm stubs."""
    sys.path.insert(0, os.path.join(OFF, tree))
    spec = importlib.util.spec_from_file_location("dassl", os.path.join(HERE, "dassl_stub", "__init__.py"),
                                                  submodule_search_locations=[os.path.join(HERE, "dassl_stub")])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["dassl"] = pkg
    spec.loader.exec_module(pkg)
    utils = importlib.import_module("dassl.utils")
    utils.MetricMeter = utils.AverageMeter = None  # imported by RESTORE's maple_fsa.py, unused by the model
    tq = types.ModuleType("tqdm")
    tq.tqdm, tq.__spec__ = (lambda it=None, *a, **k: it), importlib.machinery.ModuleSpec("tqdm", None)
    sys.modules["tqdm"] = tq


def load_patched(name, relpath, tree, patches=()):
    """Import `$OFFICIAL_TREES/<tree>/<relpath>` as module `name` after exact-text replacements.

    patches: (old, new, count) triples; each `old` must occur exactly `count` times. Returns (module, provenance)."""
    path = os.path.join(OFF, tree, relpath)
    src = open(path).read()
    prov = []
    for old, new, count in patches:
        found = src.count(old)
        assert found == count, f"{relpath}: expected {count} x {old!r}, found {found}"
        src = src.replace(old, new)
        prov.append(f"{relpath}: {old!r} -> {new!r} ({count}x)")
    pkg, _, _ = name.rpartition(".")
    mod = types.ModuleType(name)
    mod.__file__, mod.__package__ = path, pkg
    sys.modules[name] = mod
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod, prov


def dassl_build_optimizer():
    """Dassl's own build_optimizer from $OFFICIAL_TREES/dassl (package loaded as `official_dassl_optim`)."""
    d = os.path.join(OFF, "dassl", "dassl", "optim")
    spec = importlib.util.spec_from_file_location("official_dassl_optim", os.path.join(d, "__init__.py"),
                                                  submodule_search_locations=[d])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["official_dassl_optim"] = mod
    spec.loader.exec_module(mod)
    return mod.build_optimizer


def optim_cfg(tree, yaml_relpath):
    """Dassl's default OPTIM node merged with the OPTIM node of the official trainer yaml."""
    spec = importlib.util.spec_from_file_location("official_dassl_defaults",
                                                  os.path.join(OFF, "dassl", "dassl", "config", "defaults.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod._C.OPTIM.clone()
    with open(os.path.join(OFF, tree, yaml_relpath)) as f:
        cfg.merge_from_other_cfg(CN(yaml.safe_load(f)["OPTIM"]))
    return cfg


class FunctionalSpy:
    """Stands in for `torch.nn.functional` inside one official module and records, for the functions named, the
    first argument and the result of every call made there (the official forwards compute their logits and loss
    terms inline): `calls[name]` = [(input, output), ...]."""

    def __init__(self, names):
        self.calls = {n: [] for n in names}

    def __getattr__(self, attr):
        fn = getattr(torch.nn.functional, attr)
        if attr not in self.calls:
            return fn

        def wrapped(x, *a, **k):
            out = fn(x, *a, **k)
            self.calls[attr].append((x.detach().clone(), out.detach().clone()))
            return out
        return wrapped


@contextlib.contextmanager
def spy_functional(module, names=("cross_entropy",)):
    spy, orig = FunctionalSpy(names), module.F
    module.F = spy
    try:
        yield spy
    finally:
        module.F = orig


def model_backward_and_update(self, loss):
    """Dassl's SimpleTrainer.model_backward_and_update (dassl/engine/trainer.py) for the one registered optimiser:
    model_zero_grad, model_backward (detect_anomaly, loss.backward()), model_update."""
    self.optim.zero_grad()
    if not torch.isfinite(loss).all():
        raise FloatingPointError("Loss is infinite or NaN!")
    loss.backward()
    self.optim.step()


def make_trainer(cls, cfg, classnames):
    """An official trainer instance without Dassl's data pipeline: the attributes its build_model and
    forward_backward read, Dassl's model_backward_and_update, and a no-op register_model."""
    t = cls.__new__(cls)
    t.cfg, t.device = cfg, torch.device("cpu")
    t.dm = types.SimpleNamespace(dataset=types.SimpleNamespace(classnames=list(classnames)))
    t.register_model = lambda *a, **k: None
    t.model_backward_and_update = types.MethodType(model_backward_and_update, t)
    t.batch_idx, t.num_batches = 0, 2  # not the last batch: forward_backward does not call update_lr
    return t


class StepRecorder:
    """Wraps optimiser.step to record, at the moment of each step, the LR and the gradients of `trainable`."""

    def __init__(self, optim, trainable):
        self.optim, self.trainable, self.steps = optim, trainable, []
        orig = optim.step

        def step(*a, **k):
            self.steps.append({"lr": optim.param_groups[0]["lr"],
                               "grads": {n: p.grad.detach().clone() for n, p in trainable.items()}})
            return orig(*a, **k)
        optim.step = step


def optim_record(optim, trainable, name):
    """The optimiser's settings (first param group) and its state by official parameter name."""
    g = optim.param_groups[0]
    settings = {"name": name, "lr": g["lr"], "momentum": g["momentum"], "weight_decay": g["weight_decay"],
                "dampening": g["dampening"], "nesterov": g["nesterov"]}
    assert len(optim.state) == len(trainable), "the optimiser stepped a tensor outside the official filter"
    state = {n: {"momentum_buffer": optim.state[p]["momentum_buffer"].detach().clone()}
             for n, p in trainable.items()}
    return settings, state


def clone(named):
    return {n: p.detach().clone() for n, p in named.items()}


def dtypes(named):
    return {n: str(p.dtype) for n, p in named.items()}


def platform():
    return {"torch_version": str(torch.__version__), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def save(out, case):
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(OUT_DIR, f"{case}.pt")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(out, path)
    return path


def replay(params0, step, settings, master_fp32=False):
    """One torch SGD step (the settings Dassl built) from `params0` with the recorded gradients.

    master_fp32=False: in the official dtypes (must reproduce step["params"] bit for bit);
    True: the other reading, fp32 master copies stepped with fp32 gradients and cast back to the official dtype.
    Returns the parameters after the step, in the official dtypes."""
    ps = {n: torch.nn.Parameter(v.detach().clone().float() if master_fp32 else v.detach().clone())
          for n, v in params0.items()}
    for n, p in ps.items():
        p.grad = step["grads"][n].to(p.dtype)
    opt = torch.optim.SGD(list(ps.values()), lr=step["lr"], momentum=settings["momentum"],
                          weight_decay=settings["weight_decay"], dampening=settings["dampening"],
                          nesterov=settings["nesterov"])
    opt.step()
    return {n: p.detach().to(params0[n].dtype) for n, p in ps.items()}


def check_replay(params0, step, settings):
    """Asserts the bit-exact official replay; returns {name: fraction of elements where the fp32-master reading
    differs from the official step} (both in the official dtype)."""
    same = replay(params0, step, settings)
    for n, v in same.items():
        assert torch.equal(v, step["params"][n]), f"replay of {n} is not bit-exact"
    master = replay(params0, step, settings, master_fp32=True)
    return {n: round(float((master[n] != step["params"][n]).float().mean()), 4) for n in master}
