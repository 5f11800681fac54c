"""Official fp16 MaPLe run (muzairkhattak/multimodal-prompt-learning trainers/maple.py on KaiyangZhou/Dassl.pytorch):
5 optimiser steps (1 batch per epoch, 5 epochs: the constant warm-up epoch at 1e-5, then cosine; LR 0.0035 as in
vit_b16_c2_ep5_batch4_2ctx.yaml), PREC fp16, N_CTX 2, "a photo of a", PROMPT_DEPTH 3, the tiny CLIP built by the
official build_model (fp16), on CPU. Only the hard-coded ViT-B/16 widths are patched (768 -> the vision width,
512 -> ctx_dim); the .half() casts stay. Usage: python gen_fp16_maple.py
Format: tests/data/golden/README.md, "fp16 fixtures"."""
import importlib

from fp16_common import (DASSL_PATCHES, batches_for, dassl_cfg, describe, fixture_dict, import_official,
                         official_clip, official_commit, official_run, optim_settings, patched_tree, save_fixture)
from golden_common import CLASSNAMES

WIDTH_PATCHES = [
    ("trainers/maple.py", "self.proj = nn.Linear(ctx_dim, 768)",
     "self.proj = nn.Linear(ctx_dim, clip_model.visual.conv1.out_channels)"),
    ("trainers/maple.py", "nn.Parameter(torch.empty(n_ctx, 512))", "nn.Parameter(torch.empty(n_ctx, ctx_dim))"),
    ("trainers/maple.py", "single_layer = nn.Linear(ctx_dim, 768)",
     "single_layer = nn.Linear(ctx_dim, clip_model.visual.conv1.out_channels)"),
]
KEYS = {"N_CTX": 2, "CTX_INIT": "a photo of a", "PREC": "fp16", "PROMPT_DEPTH": 3}
OPTIM = {"NAME": "sgd", "LR": 0.0035, "MAX_EPOCH": 5, "LR_SCHEDULER": "cosine", "WARMUP_EPOCH": 1,
         "WARMUP_TYPE": "constant", "WARMUP_CONS_LR": 1e-5}
mpl, dassl = patched_tree("mpl", WIDTH_PATCHES), patched_tree("dassl", DASSL_PATCHES)
import_official([mpl, dassl])
from clip import clip  # noqa: E402  (the official MaPLe-repo clip package)
from dassl.config import get_cfg_default  # noqa: E402

module = importlib.import_module("trainers.maple")
DESIGN = {"trainer": "MaPLe", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0,
          "maple_length": KEYS["N_CTX"]}
module.load_clip_to_cpu = lambda cfg: official_clip(clip.build_model, DESIGN)
cfg = dassl_cfg(get_cfg_default, "MAPLE", KEYS, OPTIM)
batches, eval_batch = batches_for(5, len(CLASSNAMES))
t, trainable, params0, steps, state, eval_logits = official_run(module, module.MaPLe, cfg, CLASSNAMES, batches,
                                                                 eval_batch, seed=123, noise_seed=3000)
provenance = describe("dassl", DASSL_PATCHES) + describe("mpl", WIDTH_PATCHES) + [
    "trainers/maple.py: load_clip_to_cpu -> clip.build_model(clip_state_dict(), design_details) (the golden tiny "
    "CLIP, fp16 by convert_weights)",
    "trainers/maple.py: module-level F replaced by fp16_common.RecordingF (records cross_entropy's logits and loss)",
    "Dassl trainer built without its DataManager/evaluator; TrainerX.run_epoch over one fixed batch per epoch; "
    "after_epoch (checkpoint, test) not run",
    "python gen_fp16_maple.py"]
out = fixture_dict("maple", "MaPLe", "muzairkhattak/multimodal-prompt-learning + KaiyangZhou/Dassl.pytorch",
                   "trainers/maple.py, clip/model.py, dassl/engine/trainer.py, dassl/optim/optimizer.py, "
                   "dassl/optim/lr_scheduler.py",
                   {"multimodal-prompt-learning": official_commit("mpl"), "Dassl.pytorch": official_commit("dassl")},
                   provenance, cfg, "MAPLE", CLASSNAMES, eval_batch, trainable, params0, steps, state,
                   optim_settings(t.optim), eval_logits)
print(save_fixture("maple", out))
print(out["param_dtypes"], [round(s["lr"], 7) for s in steps], [float(s["loss"]) for s in steps],
      "unchanged at warm-up", out["frozen_changed_elements_warmup"])
