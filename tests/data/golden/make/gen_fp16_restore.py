"""Official fp16 one-step run of RESTORE (Yaphabates/RESTORE_, trainers/maple_fsa.py: MaPLe_FSA) on CPU.
python gen_fp16_restore.py [out.pt]   (default ../fp16/restore.pt; trees under $OFFICIAL_TREES, see fp16_rest_common)

The official MaPLe_FSA.build_model runs with PREC fp16 (the tiny CLIP stays fp16 after convert_weights; the
prompt learner and both Feature_Calibrator adapters keep their official dtypes), the official requires_grad filter
(`prompt_learner|adapter|VPT`) and Dassl's build_optimizer over `self.model`. Protocol as the fp32 restore case
(gen_restore.py): p0 = official init with the compound prompts, coupling projections and both adapters perturbed;
a first training forward at p0 captures the reference Gram norms ||P0^T P0||_F; every trainable tensor is then moved
to p1 (`params0` here) and the official forward_backward takes ONE optimiser step from there, so FSC is nonzero.
The step runs at OPTIM.LR as build_optimizer sets it (the warm-up scheduler is not built, see the golden README).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp16_rest_common as C  # noqa: E402
from golden_common import CLASSNAMES, images_and_labels  # noqa: E402

C.install_stubs("restore")
from yacs.config import CfgNode as CN  # noqa: E402
from clip import clip  # noqa: E402

WIDTH = "clip_model.visual.conv1.out_channels"
EMBED = "clip_model.text_projection.shape[1]"
CALIBRATOR_512 = """    def __init__(self):
        super().__init__()
        self.FFN = nn.Sequential(
            nn.Linear(512, 2048),
            QuickGELU(),
            nn.Linear(2048, 512),
            # QuickGELU()
        )
        self.post_ln = nn.LayerNorm(512)"""
CALIBRATOR_DIM = CALIBRATOR_512.replace("(self)", "(self, dim=512)").replace("512, 2048", "dim, 4 * dim") \
    .replace("2048, 512", "4 * dim, dim").replace("LayerNorm(512)", "LayerNorm(dim)")
PATCHES = [  # ViT-B/16 widths hard-coded by the official file -> the tiny CLIP's (dimension-only; .half() kept)
    ("self.proj = nn.Linear(ctx_dim, 768)", f"self.proj = nn.Linear(ctx_dim, {WIDTH})", 1),
    ("single_layer = nn.Linear(ctx_dim, 768)", f"single_layer = nn.Linear(ctx_dim, {WIDTH})", 1),
    ("nn.Parameter(torch.empty(n_ctx, 512))", "nn.Parameter(torch.empty(n_ctx, ctx_dim))", 1),
    (CALIBRATOR_512, CALIBRATOR_DIM, 1),
    ("Feature_Calibrator().half()", f"Feature_Calibrator({EMBED}).half()", 2),
]
mod, patch_prov = C.load_patched("trainers.maple_fsa", "trainers/maple_fsa.py", "restore", PATCHES)
J, TR, VR, LAM = 3, 0.1, 0.15, 0.5
YAML = "configs/trainers/MaPLe_FSA/vit_b16_c2_ep5_batch4_2ctx.yaml"
cfg = CN()
cfg.INPUT = CN(); cfg.INPUT.SIZE = (32, 32)
cfg.MODEL = CN(); cfg.MODEL.BACKBONE = CN(); cfg.MODEL.BACKBONE.NAME = "ViT-B/16"; cfg.MODEL.INIT_WEIGHTS = ""
cfg.TRAINER = CN()
for node in ("MAPLE", "MAPLE_FSA"):  # build_model and check_cfg read TRAINER.MAPLE.PREC
    cfg.TRAINER[node] = CN(); cfg.TRAINER[node].N_CTX = 2; cfg.TRAINER[node].CTX_INIT = "a photo of a"
    cfg.TRAINER[node].PREC = "fp16"; cfg.TRAINER[node].PROMPT_DEPTH = J
cfg.TRAINER.MAPLE_FSA.VIS_CALIB_R = VR; cfg.TRAINER.MAPLE_FSA.TEXT_CALIB_R = TR; cfg.TRAINER.MAPLE_FSA.FS_LOSS_R = LAM
cfg.OPTIM = C.optim_cfg("restore", YAML)
design = {"trainer": "MaPLe_FSA", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0,
          "maple_length": 2}


def load_clip_to_cpu(cfg):  # the official loader, reading the tiny CLIP instead of downloading ViT-B/16
    model = clip.build_model(C.clip_state_dict(), design)
    torch.manual_seed(123)  # the official init of the prompt learner and adapters, as in gen_restore.py
    return model


mod.load_clip_to_cpu = load_clip_to_cpu
mod.build_optimizer = C.dassl_build_optimizer()
mod.build_lr_scheduler = lambda optim, optim_cfg: None
t = C.make_trainer(mod.MaPLe_FSA, cfg, CLASSNAMES)
t.check_cfg(cfg)
t.build_model()
model = t.model
own = {n: p for n, p in model.named_parameters() if p.requires_grad}
g = torch.Generator().manual_seed(7)
with torch.no_grad():
    for n, p in own.items():
        if "compound" in n or "adapter" in n or n.startswith("prompt_learner.proj"):
            p.add_(max(0.5 * float(p.float().std()), 0.05) * torch.randn(p.shape, generator=g))
p0 = C.clone(own)
with torch.no_grad():
    for n, p in own.items():
        p.add_(0.3 * float(p.float().std()) * torch.randn(p.shape, generator=g) + 0.01)
params0 = C.clone(own)
images, labels = images_and_labels(11, 4, len(CLASSNAMES))

model.train()
with torch.no_grad():
    for n, p in own.items():
        p.copy_(p0[n])
    loss_ref = model(images, labels)  # first training forward: captures the P0 Gram norms (FSC = 0 there)
    for n, p in own.items():
        p.copy_(params0[n])
gram_text = torch.stack(model.init_text_prompt_norm)
gram_vision = torch.stack(model.init_visual_prompt_norm)
with torch.no_grad():
    _, _, dt, dv = model.prompt_learner()
    s_t = torch.stack([torch.norm(dt[i].t() @ dt[i]) / model.init_text_prompt_norm[i] for i in range(len(dt))])
    s_v = torch.stack([torch.norm(dv[i].t() @ dv[i]) / model.init_visual_prompt_norm[i] for i in range(len(dv))])

rec = C.StepRecorder(t.optim, own)
captured = []
hook = model.register_forward_hook(lambda m, i, o: captured.append(o.detach().clone()))
with C.spy_functional(mod) as spy:
    summary = t.forward_backward({"img": images, "label": labels})
hook.remove()
assert len(captured) == 1 and len(spy.calls["cross_entropy"]) == 1 and len(rec.steps) == 1
logits, ce = spy.calls["cross_entropy"][0]
loss = captured[0]
assert float(loss) == summary["loss"]
model.eval()
with torch.no_grad():
    eval_logits = model(images)
settings, state = C.optim_record(t.optim, own, cfg.OPTIM.NAME)
step = {"lr": rec.steps[0]["lr"], "loss": loss, "logits": logits, "grads": rec.steps[0]["grads"],
        "params": C.clone(own),
        "loss_terms": {"ce": ce, "fsc": ((s_t - s_v) ** 2).sum(), "s_text": s_t, "s_vision": s_v,
                       "fs_loss_r": LAM}}
assert all(v.abs().sum() > 0 for v in step["grads"].values())
out = {"case": "restore", "method": "RESTORE (MaPLe_FSA), PREC fp16, one SGD step",
       "official_repo": "Yaphabates/RESTORE_", "official_file": "trainers/maple_fsa.py",
       "official_commit": C.COMMITS["Yaphabates/RESTORE_"],
       "dassl_commit": C.COMMITS["KaiyangZhou/Dassl.pytorch"],
       "provenance": [f"unpatched git archive of Yaphabates/RESTORE_@{C.COMMITS['Yaphabates/RESTORE_']}",
                      *patch_prov,
                      "load_clip_to_cpu -> clip.build_model(golden_common.clip_state_dict(), design) "
                      "(official build_model: convert_weights, fp16), then torch.manual_seed(123)",
                      "MaPLe_FSA.build_model / forward_backward run unchanged on a trainer made by "
                      "fp16_rest_common.make_trainer; build_optimizer = Dassl's (dassl/optim/optimizer.py), "
                      "build_lr_scheduler not built (None)",
                      C.STUB_NOTE, "python gen_fp16_restore.py"],
       "config": {"TRAINER.MAPLE_FSA.N_CTX": 2, "TRAINER.MAPLE_FSA.CTX_INIT": "a photo of a",
                  "TRAINER.MAPLE_FSA.PROMPT_DEPTH": J, "TRAINER.MAPLE_FSA.TEXT_CALIB_R": TR,
                  "TRAINER.MAPLE_FSA.VIS_CALIB_R": VR, "TRAINER.MAPLE_FSA.FS_LOSS_R": LAM,
                  "TRAINER.MAPLE_FSA.PREC": "fp16", "TRAINER.MAPLE.PREC": "fp16",
                  **{f"OPTIM.{k}": v for k, v in cfg.OPTIM.items() if not isinstance(v, CN)},
                  "optim_config_file": YAML,
                  "lr_note": "step at OPTIM.LR (build_optimizer); an official run's epoch 0 uses WARMUP_CONS_LR"},
       "classnames": list(CLASSNAMES), "images": images, "labels": labels,
       "tokenized_prompts": model.tokenized_prompts.clone(),
       "reference_params": p0, "reference_loss": loss_ref, "p0_gram_norm_text": gram_text,
       "p0_gram_norm_vision": gram_vision,
       "calib_ratios": {"text": float(model.text_cali_ratio), "vision": float(model.vis_cali_ratio)},
       "params0": params0, "param_dtypes": C.dtypes(own), "steps": [step], "optim_state": state, "optim": settings,
       "eval_logits": eval_logits, **C.platform()}
differs = C.check_replay(params0, step, settings)  # asserts the bit-exact replay before saving
print("saved", C.save(out, "restore"))
print("loss", float(loss), loss.dtype, "ce", float(ce), ce.dtype, "fsc", float(step["loss_terms"]["fsc"]),
      "lr", step["lr"], "logits", logits.dtype)
print("dtypes", {n: (str(p.dtype).split(".")[1], str(state[n]["momentum_buffer"].dtype).split(".")[1])
                 for n, p in own.items()})
print("fp32-master differs on", differs)
print("unchanged elements", {n: round(float((step["params"][n] == params0[n]).float().mean()), 3) for n in own})
