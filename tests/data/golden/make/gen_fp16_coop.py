"""Official fp16 CoOp / CoCoOp runs (KaiyangZhou/CoOp trainers/coop.py, trainers/cocoop.py on
KaiyangZhou/Dassl.pytorch): 5 optimiser steps (1 batch per epoch, 5 epochs: the constant warm-up epoch at 1e-5, then cosine), PREC fp16, the
tiny CLIP built by the official build_model (fp16), on CPU. Usage: python gen_fp16_coop.py {coop|cocoop}
Format: tests/data/golden/README.md, "fp16 fixtures"."""
import importlib
import sys

from fp16_common import (DASSL_PATCHES, batches_for, dassl_cfg, describe, fixture_dict, import_official,
                         official_clip, official_commit, official_run, optim_settings, patched_tree, save_fixture)
from golden_common import CLASSNAMES

which = sys.argv[1]
CASES = {
    "coop": ("CoOp", "COOP", "trainers.coop", "trainers/coop.py",
             {"N_CTX": 4, "CSC": False, "CTX_INIT": "", "PREC": "fp16", "CLASS_TOKEN_POSITION": "end"}),
    "cocoop": ("CoCoOp", "COCOOP", "trainers.cocoop", "trainers/cocoop.py",
               {"N_CTX": 4, "CTX_INIT": "a photo of a", "PREC": "fp16"}),
}
method, node, modname, file, keys = CASES[which]
OPTIM = {"NAME": "sgd", "LR": 0.002, "MAX_EPOCH": 5, "LR_SCHEDULER": "cosine", "WARMUP_EPOCH": 1,
         "WARMUP_TYPE": "constant", "WARMUP_CONS_LR": 1e-5}  # the official configs' values (vit_b16_*.yaml)
coop, dassl = patched_tree("coop"), patched_tree("dassl", DASSL_PATCHES)
import_official([coop, dassl])
from clip import clip  # noqa: E402  (the official CoOp clip package)
from dassl.config import get_cfg_default  # noqa: E402

module = importlib.import_module(modname)
module.load_clip_to_cpu = lambda cfg: official_clip(clip.build_model)
cfg = dassl_cfg(get_cfg_default, node, keys, OPTIM)
batches, eval_batch = batches_for(5, len(CLASSNAMES))
t, trainable, params0, steps, state, eval_logits = official_run(module, getattr(module, method), cfg, CLASSNAMES,
                                                                 batches, eval_batch, seed=123, noise_seed=2000)
provenance = describe("dassl", DASSL_PATCHES) + [
    f"{file}: load_clip_to_cpu -> clip.build_model(clip_state_dict()) (the golden tiny CLIP, fp16 by convert_weights)",
    f"{file}: module-level F replaced by fp16_common.RecordingF (records cross_entropy's logits and loss)",
    "Dassl trainer built without its DataManager/evaluator; TrainerX.run_epoch over one fixed batch per epoch; "
    "after_epoch (checkpoint, test) not run",
    f"python gen_fp16_coop.py {which}"]
out = fixture_dict(f"{which}", method, "KaiyangZhou/CoOp + KaiyangZhou/Dassl.pytorch",
                   f"{file}, dassl/engine/trainer.py, dassl/optim/optimizer.py, dassl/optim/lr_scheduler.py",
                   {"CoOp": official_commit("coop"), "Dassl.pytorch": official_commit("dassl")}, provenance, cfg, node,
                   CLASSNAMES, eval_batch, trainable, params0, steps, state, optim_settings(t.optim), eval_logits)
print(save_fixture(which, out))
print({n: str(p.dtype) for n, p in trainable.items()}, [round(s["lr"], 7) for s in steps],
      [float(s["loss"]) for s in steps], "unchanged at warm-up", out["frozen_changed_elements_warmup"])
