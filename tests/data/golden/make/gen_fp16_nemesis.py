"""Official fp16 one-step run of Nemesis (ShyFoo/Nemesis, trainers/coop_nemesis.py: CoOpNemesis, CoOp + the PUN
and PAN norm losses) on CPU.  python gen_fp16_nemesis.py [out.pt]   (default ../fp16/nemesis.pt)

The official CoOpNemesis.build_model runs with PREC fp16 (tiny CLIP fp16 after convert_weights; ctx created with
dtype=clip_model.dtype), the official filter (`prompt_learner` only) and Dassl's build_optimizer over
`self.model.prompt_learner`; the official forward_backward then takes ONE step through Dassl's
model_backward_and_update. One configuration of the fp32 nemesis case (gen_nemesis.py): generic ctx (N_CTX 4,
CSC False) set to the same fixed values, BETA 0.5 (PUN + PAN), A 2, NT "two", NP 3, CW 0, TestColors, epoch 7 of 10
(logistic omega), the same 16 images; `random.sample` returns the fixed positions [2, 0, 3], and the labels are chosen
from the fp16 pre-inference so that PAN flags positions. The step runs at OPTIM.LR as build_optimizer sets it.
"""
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp16_rest_common as C  # noqa: E402
from golden_common import NEM_CLASSNAMES  # noqa: E402

C.install_stubs("nem")
from yacs.config import CfgNode as CN  # noqa: E402
from clip import clip  # noqa: E402

mod, patch_prov = C.load_patched("off_coop_nemesis", "trainers/coop_nemesis.py", "nem")
POS, A, NP, CW, BETA, EPOCH, T = [2, 0, 3], 2.0, 3, 0.0, 0.5, 7, 10
mod.random = types.SimpleNamespace(sample=lambda population, k: list(POS[:k]))
g = torch.Generator().manual_seed(41)
images = torch.randn(16, 3, 32, 32, generator=g)
ctx0 = 1.0 * torch.randn(4, 64, generator=torch.Generator().manual_seed(5))
YAML = "configs/trainers/CoOpNemesis/vit_b16_ep50.yaml"
cfg = CN()
cfg.TRAINER = CN(); n = cfg.TRAINER.CoOpNemesis = CN()
n.N_CTX = 4; n.CSC = False; n.CTX_INIT = ""; n.PREC = "fp16"; n.CLASS_TOKEN_POSITION = "end"
n.A = A; n.NT = "two"; n.NP = NP; n.CW = CW; n.BETA = BETA
cfg.INPUT = CN(); cfg.INPUT.SIZE = (32, 32); cfg.DATASET = CN(); cfg.DATASET.NAME = "TestColors"
cfg.MODEL = CN(); cfg.MODEL.BACKBONE = CN(); cfg.MODEL.BACKBONE.NAME = "ViT-B/16"; cfg.MODEL.INIT_WEIGHTS = ""
cfg.OPTIM = C.optim_cfg("nem", YAML)
cfg.OPTIM.MAX_EPOCH = T  # as the fp32 nemesis case: omega at epoch 7 of 10 (no scheduler is built)
mod.load_clip_to_cpu = lambda cfg: clip.build_model(C.clip_state_dict())
mod.build_optimizer = C.dassl_build_optimizer()
mod.build_lr_scheduler = lambda optim, optim_cfg: None
t = C.make_trainer(mod.CoOpNemesis, cfg, NEM_CLASSNAMES)
t.check_cfg(cfg)
torch.manual_seed(0)
t.build_model()
t.epoch, t.max_epoch = EPOCH, cfg.OPTIM.MAX_EPOCH
model = t.model
own = {n: p for n, p in model.named_parameters() if p.requires_grad}
assert list(own) == ["prompt_learner.ctx"], list(own)
with torch.no_grad():
    model.prompt_learner.ctx.copy_(ctx0)
params0 = C.clone(own)
with torch.no_grad():  # labels: copy 0's prediction, overwritten by a rescaled copy's wherever it disagrees
    o = model.inference_batch(images, CW, POS[:NP])
    p = o.argmax(-1); labels = p[0].clone()
    for j in range(NP, 0, -1):
        labels = torch.where(p[j] != p[0], p[j], labels)
    counts = (o.argmax(-1) == labels.unsqueeze(0)).sum(-1)

rec = C.StepRecorder(t.optim, own)
losses, norms, logits = [], [], []
orig_mbu, orig_normalize = t.model_backward_and_update, t.normalize
t.model_backward_and_update = lambda loss: (losses.append(loss.detach().clone()), orig_mbu(loss))
t.normalize = lambda pos_alpha: (lambda r: (norms.append(r.detach().clone()), r)[1])(orig_normalize(pos_alpha))
hook = model.register_forward_hook(lambda m, i, o: logits.append(o.detach().clone()))
model.train()
with C.spy_functional(mod) as spy:
    summary = t.forward_backward({"img": images, "label": labels})
hook.remove()
assert len(losses) == len(logits) == len(rec.steps) == 1 and len(norms) == 2
ce = spy.calls["cross_entropy"][0][1]
assert torch.equal(spy.calls["cross_entropy"][0][0], logits[0])
model.eval()
with torch.no_grad():
    eval_logits = model(images)
settings, state = C.optim_record(t.optim, own, cfg.OPTIM.NAME)
omega = t.omega_schedule()
step = {"lr": rec.steps[0]["lr"], "loss": losses[0], "logits": logits[0], "grads": rec.steps[0]["grads"],
        "params": C.clone(own),
        "loss_terms": {"ce": ce, "pun": norms[0], "pan": norms[1], "omega": omega, "beta": BETA,
                       "pos_alpha": t.pos_alpha.clone(), "pre_inference_correct_counts": counts,
                       "n_loss_logged": summary["n_loss"], "matrix_norm_logged": summary["matrix_norm"],
                       "v_norms_logged": [summary[f"v{i}_norm"] for i in range(4)]}}
out = {"case": "nemesis", "method": "Nemesis (CoOpNemesis, BETA 0.5), PREC fp16, one SGD step",
       "official_repo": "ShyFoo/Nemesis", "official_file": "trainers/coop_nemesis.py",
       "official_commit": C.COMMITS["ShyFoo/Nemesis"], "dassl_commit": C.COMMITS["KaiyangZhou/Dassl.pytorch"],
       "provenance": [f"unpatched git archive of ShyFoo/Nemesis@{C.COMMITS['ShyFoo/Nemesis']}",
                      "no source patch (trainers/coop_nemesis.py has no hard-coded widths and no .cuda())",
                      f"the module's random.sample returns the fixed positions {POS} (PAN deterministic)",
                      "load_clip_to_cpu -> clip.build_model(golden_common.clip_state_dict()) "
                      "(official build_model: convert_weights, fp16); torch.manual_seed(0) before build_model",
                      "CoOpNemesis.build_model / forward_backward run unchanged on a trainer made by "
                      "fp16_rest_common.make_trainer (model_backward_and_update = Dassl's zero_grad, backward, step; "
                      "epoch 7, max_epoch 10, batch_idx 0 of 2); build_optimizer = Dassl's, "
                      "build_lr_scheduler not built (None)",
                      C.STUB_NOTE, "python gen_fp16_nemesis.py"],
       "config": {"TRAINER.CoOpNemesis.N_CTX": 4, "TRAINER.CoOpNemesis.CSC": False,
                  "TRAINER.CoOpNemesis.CTX_INIT": "", "TRAINER.CoOpNemesis.PREC": "fp16",
                  "TRAINER.CoOpNemesis.CLASS_TOKEN_POSITION": "end", "TRAINER.CoOpNemesis.A": A,
                  "TRAINER.CoOpNemesis.NT": "two", "TRAINER.CoOpNemesis.NP": NP, "TRAINER.CoOpNemesis.CW": CW,
                  "TRAINER.CoOpNemesis.BETA": BETA, "DATASET.NAME": "TestColors", "epoch": EPOCH,
                  "positions (random.sample patched)": POS[:NP],
                  **{f"OPTIM.{k}": v for k, v in cfg.OPTIM.items() if not isinstance(v, CN)},
                  "optim_config_file": YAML + " (MAX_EPOCH set to 10)",
                  "loss_formula": "ce + omega * (beta * pun + (1 - beta) * pan)",
                  "lr_note": "step at OPTIM.LR (build_optimizer); an official run's epoch 0 uses WARMUP_CONS_LR"},
       "classnames": list(NEM_CLASSNAMES), "images": images, "labels": labels,
       "params0": params0, "param_dtypes": C.dtypes(own), "steps": [step], "optim_state": state, "optim": settings,
       "eval_logits": eval_logits, **C.platform()}
differs = C.check_replay(params0, step, settings)  # asserts the bit-exact replay before saving
print("saved", C.save(out, "nemesis"))
print("loss", float(losses[0]), losses[0].dtype, {k: (float(v), str(v.dtype)) for k, v in step["loss_terms"].items()
                                                  if torch.is_tensor(v) and v.dim() == 0},
      "omega", omega, "alpha", t.pos_alpha.tolist(), "counts", counts.tolist(), "lr", step["lr"])
print("dtypes", {n: (str(p.dtype), str(state[n]["momentum_buffer"].dtype)) for n, p in own.items()})
print("fp32-master differs on", differs)
print("unchanged elements", {n: round(float((step["params"][n] == params0[n]).float().mean()), 3) for n in own})
