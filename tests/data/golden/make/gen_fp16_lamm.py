"""Official fp16 one-step run of LAMM on the coop base (gaojingsheng/LAMM, trainers/coop.py, without --origin-clip)
on CPU.  python gen_fp16_lamm.py [out.pt]   (default ../fp16/lamm_coop.pt; trees under $OFFICIAL_TREES)

The official CoOp.build_model runs with PREC fp16 (tiny CLIP fp16 after convert_weights; ctx and the label
embeddings token_classes in CLIP's dtype), the official filter (`prompt_learner` only; fix_token has
requires_grad False) and Dassl's build_optimizer over `self.model.prompt_learner`; the official forward_backward
then takes ONE step through Dassl's model_backward_and_update. Setup as the fp32 lamm_coop case (gen_lamm.py):
CTX_INIT "a photo of a", 6 multi-word class names (min_len 2), ctx and token_classes moved from their init by seeded
noise, triplet_loss on, shots 1 (the coop-base script passes no --shots). The loss terms are read inside that very
forward. The step runs at OPTIM.LR as build_optimizer sets it (the warm-up scheduler is not built).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp16_rest_common as C  # noqa: E402
from golden_common import LAMM_CLASSNAMES, images_and_labels  # noqa: E402

C.install_stubs("lamm")
from yacs.config import CfgNode as CN  # noqa: E402
from clip import clip  # noqa: E402

mod, patch_prov = C.load_patched("off_lamm_coop", "trainers/coop.py", "lamm")
YAML = "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml"  # the config of scripts/coop/base_train_coop_lamm_all.sh
cfg = CN()
cfg.TRAINER = CN(); cfg.TRAINER.COOP = CN()
cfg.TRAINER.COOP.N_CTX = 16; cfg.TRAINER.COOP.CTX_INIT = "a photo of a"; cfg.TRAINER.COOP.CSC = False
cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"; cfg.TRAINER.COOP.PREC = "fp16"
cfg.origin_clip = False; cfg.random_init = False; cfg.eval_only = False; cfg.triplet_loss = True; cfg.shots = 1
cfg.DATASET = CN(); cfg.DATASET.SUBSAMPLE_CLASSES = "all"; cfg.INPUT = CN(); cfg.INPUT.SIZE = (32, 32)
cfg.MODEL = CN(); cfg.MODEL.BACKBONE = CN(); cfg.MODEL.BACKBONE.NAME = "ViT-B/16"; cfg.MODEL.INIT_WEIGHTS = ""
cfg.OPTIM = C.optim_cfg("lamm", YAML)
design = {"trainer": "CoOp", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0}
mod.load_clip_to_cpu = lambda cfg: clip.build_model(C.clip_state_dict(), design)
mod.build_optimizer = C.dassl_build_optimizer()
mod.build_lr_scheduler = lambda optim, optim_cfg: None
t = C.make_trainer(mod.CoOp, cfg, LAMM_CLASSNAMES)
t.check_cfg(cfg)
torch.manual_seed(0)
t.build_model()
model, pl = t.model, t.model.prompt_learner
init = {f"prompt_learner.{n}": p.detach().clone() for n, p in pl.named_parameters()}
g = torch.Generator().manual_seed(32)
with torch.no_grad():
    pl.token_classes.add_(0.1 * torch.randn(pl.token_classes.shape, generator=g))
    pl.ctx.add_(0.1 * torch.randn(pl.ctx.shape, generator=g))
own = {n: p for n, p in model.named_parameters() if p.requires_grad}
assert sorted(own) == ["prompt_learner.ctx", "prompt_learner.token_classes"], sorted(own)
params0 = C.clone(own)
images, labels = images_and_labels(21, 5, len(LAMM_CLASSNAMES))

rec = C.StepRecorder(t.optim, own)
losses, cos, kd = [], [], []
orig_mbu, orig_distillation = t.model_backward_and_update, mod.distillation
t.model_backward_and_update = lambda loss: (losses.append(loss.detach().clone()), orig_mbu(loss))


def distillation(logits, fix_logits, T=2):
    out = orig_distillation(logits, fix_logits, T=T)
    kd.append((fix_logits.detach().clone(), out.detach().clone()))
    return out


mod.distillation = distillation
hook = model.loss_feature_fn.register_forward_hook(lambda m, i, o: cos.append(o.detach().clone()))
model.train()
with C.spy_functional(mod, ("cross_entropy", "mse_loss")) as spy:
    summary = t.forward_backward({"img": images, "label": labels})
hook.remove()
mod.distillation = orig_distillation
assert len(losses) == len(cos) == len(kd) == len(rec.steps) == 1
assert len(spy.calls["cross_entropy"]) == len(spy.calls["mse_loss"]) == 1
logits, ce = spy.calls["cross_entropy"][0]
loss = losses[0]
assert float(loss) == summary["loss"]
model.eval()
with torch.no_grad():
    eval_logits = model(images)
settings, state = C.optim_record(t.optim, own, cfg.OPTIM.NAME)
step = {"lr": rec.steps[0]["lr"], "loss": loss, "logits": logits, "grads": rec.steps[0]["grads"],
        "params": C.clone(own),
        "loss_terms": {"ce": ce, "wc": spy.calls["mse_loss"][0][1], "cos": cos[0], "kd": kd[0][1]},
        "logits_original_names": kd[0][0]}
out = {"case": "lamm_coop", "method": "LAMM (coop base), PREC fp16, one SGD step",
       "official_repo": "gaojingsheng/LAMM", "official_file": "trainers/coop.py",
       "official_commit": C.COMMITS["gaojingsheng/LAMM"], "dassl_commit": C.COMMITS["KaiyangZhou/Dassl.pytorch"],
       "provenance": [f"unpatched git archive of gaojingsheng/LAMM@{C.COMMITS['gaojingsheng/LAMM']}",
                      "no source patch (trainers/coop.py has no hard-coded widths and no .cuda())",
                      "load_clip_to_cpu -> clip.build_model(golden_common.clip_state_dict(), design) "
                      "(official build_model: convert_weights, fp16); torch.manual_seed(0) before build_model",
                      "CoOp.build_model / forward_backward run unchanged on a trainer made by "
                      "fp16_rest_common.make_trainer (model_backward_and_update = Dassl's zero_grad, backward, step); "
                      "build_optimizer = Dassl's (dassl/optim/optimizer.py), build_lr_scheduler not built (None)",
                      C.STUB_NOTE, "python gen_fp16_lamm.py"],
       "config": {"TRAINER.COOP.N_CTX": 16, "TRAINER.COOP.CTX_INIT": "a photo of a", "TRAINER.COOP.CSC": False,
                  "TRAINER.COOP.CLASS_TOKEN_POSITION": "end", "TRAINER.COOP.PREC": "fp16", "origin_clip": False,
                  "shots": 1, "triplet_loss": True, "random_init": False, "min_len": int(pl.min_len),
                  "label_tokens": "min_len", "loss_formula": "ce + (1/shots)*wc + cos + 0.05*kd",
                  **{f"OPTIM.{k}": v for k, v in cfg.OPTIM.items() if not isinstance(v, CN)},
                  "optim_config_file": YAML,
                  "lr_note": "step at OPTIM.LR (build_optimizer); an official run's epoch 0 uses WARMUP_CONS_LR"},
       "classnames": list(LAMM_CLASSNAMES), "images": images, "labels": labels,
       "tokenized_prompts": model.tokenized_prompts.clone(), "name_lens": list(pl.name_lens),
       "init_params": {n: init[n] for n in own},
       "frozen": {"prompt_learner.fix_token": pl.fix_token.detach().clone()},
       "params0": params0, "param_dtypes": C.dtypes(own), "steps": [step], "optim_state": state, "optim": settings,
       "eval_logits": eval_logits, **C.platform()}
differs = C.check_replay(params0, step, settings)  # asserts the bit-exact replay before saving
print("saved", C.save(out, "lamm_coop"))
print("loss", float(loss), loss.dtype, {k: (float(v), str(v.dtype)) for k, v in step["loss_terms"].items()},
      "lr", step["lr"], "logits", logits.dtype)
print("dtypes", {n: (str(p.dtype), str(state[n]["momentum_buffer"].dtype)) for n, p in own.items()})
print("fp32-master differs on", differs)
print("unchanged elements", {n: round(float((step["params"][n] == params0[n]).float().mean()), 3) for n in own})
