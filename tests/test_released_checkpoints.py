"""Official released checkpoints: each layout, written here as Dassl writes it (official key names, fp16 tensors, the
pickled warm-up scheduler), loads through ``--eval-only --model-dir`` (``trainer.load_model``) into the project's
modules; the allow-list reader refuses a file that carries a callable."""
import os

import pytest
import torch

from engine import build_trainer
from engine.utils import UnsafeCheckpointError, load_checkpoint, set_random_seed
from engine.utils.dassl_checkpoint import InertObject, load_dassl_checkpoint
from tests.helpers import TINY_VIT_DEPTHS, tiny_cfg

SETTINGS = {  # trainer -> opts fitting the 3-block tiny ViT
    "CoOp": ["TRAINER.COOP.N_CTX", "4"],
    "CoCoOp": ["TRAINER.COCOOP.N_CTX", "4"],
    "Nemesis": ["TRAINER.COOP.N_CTX", "4"],
    **TINY_VIT_DEPTHS,
    "RESTORE": [*TINY_VIT_DEPTHS["RESTORE"], "TRAINER.RESTORE.PREC", "fp32"],
    "LAMM": ["TRAINER.LAMM.BASE", "coop", "TRAINER.LAMM.LABEL_TOKENS", "min_len", "TRAINER.LAMM.CTX_INIT",
             "a photo of a"],
}


def build(tmp_path, trainer):
    cfg = tiny_cfg(str(tmp_path / "data"), str(tmp_path / "eval"), trainer=trainer,
                   opts=["OPTIM.MAX_EPOCH", "1", *SETTINGS[trainer]])
    set_random_seed(1)
    return build_trainer(cfg)


def half(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).half()


def save_dassl(state_dict, run, name, epoch=5):
    """A checkpoint as Dassl's save_checkpoint writes it: the scheduler state holds the successor scheduler object,
    which references the SGD optimiser (so weights_only=True refuses the file)."""
    param = torch.nn.Parameter(torch.zeros(3))
    optim = torch.optim.SGD([param], lr=0.002, momentum=0.9, weight_decay=5e-4)
    param.grad = torch.ones(3)
    optim.step()  # momentum buffers: the optimiser state is a defaultdict
    successor = torch.optim.lr_scheduler.CosineAnnealingLR(optim, 50)
    scheduler = {"successor": successor, "warmup_epoch": 1, "cons_lr": 1e-5, "last_epoch": epoch,
                 "base_lrs": [0.002], "_step_count": epoch + 1}
    folder = os.path.join(run, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"model.pth.tar-{epoch}")
    torch.save({"state_dict": state_dict, "epoch": epoch, "optimizer": optim.state_dict(), "scheduler": scheduler,
                "val_result": None}, path)
    return path


def class_buffers(t, width):
    n = len(t.classnames)
    return {"token_prefix": torch.zeros(n, 1, width).half(), "token_suffix": torch.zeros(n, 20, width).half()}


def check_loaded(module, expected):
    own = module.state_dict()
    for key, value in expected.items():
        assert torch.equal(own[key], value.float().reshape(own[key].shape)), key


# ---- the allow-list reader ---------------------------------------------------------------------------------------
class Callable:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_dassl_checkpoint_is_read_as_data_and_a_callable_is_refused(tmp_path, monkeypatch):
    path = save_dassl({"ctx": half((4, 40), 0)}, str(tmp_path), "prompt_learner")
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(path)  # the project's loader refuses it
    ckpt = load_dassl_checkpoint(path)
    assert set(ckpt) == {"state_dict", "epoch", "val_result"} and ckpt["epoch"] == 5
    assert ckpt["state_dict"]["ctx"].dtype == torch.float16

    raw = torch.load(path, weights_only=False)  # reference: what the inert objects stand for
    assert type(raw["scheduler"]["successor"]).__name__ == "CosineAnnealingLR"
    import engine.utils.dassl_checkpoint as dc
    with torch.serialization.safe_globals(dc._allow_list()):
        inert = torch.load(path, weights_only=True)["scheduler"]["successor"]
    assert isinstance(inert, InertObject) and inert.qualified_name == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert isinstance(inert.state["optimizer"], InertObject) and inert.state["T_max"] == 50

    evil = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"ctx": torch.zeros(2)}, "scheduler": Callable()}, evil)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system|nt.system"):
        load_dassl_checkpoint(str(evil))
    assert not (tmp_path / "pwned-by-checkpoint").exists()


# ---- each released layout ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("trainer", ["CoOp", "Nemesis"])
def test_coop_layout(tmp_path, trainer):
    t = build(tmp_path, trainer)
    ctx = half((4, 40), 1)
    save_dassl({"ctx": ctx, **class_buffers(t, 40)}, str(tmp_path / "released"), "prompt_learner", epoch=50)
    t.load_model(str(tmp_path / "released"), epoch=50)
    check_loaded(t.prompt_learner, {"ctx": ctx})
    assert t.prompt_learner.ctx.dtype == torch.float32 and t.prompt_learner.token_prefix.abs().sum() > 0


def test_cocoop_layout(tmp_path):
    t = build(tmp_path, "CoCoOp")
    state = {k: half(v.shape, i) for i, (k, v) in enumerate(t.prompt_learner.state_dict().items())}
    assert set(state) == {"ctx", "meta_net.linear1.weight", "meta_net.linear1.bias", "meta_net.linear2.weight",
                          "meta_net.linear2.bias"}  # the official names (name_map.json)
    save_dassl({**state, **class_buffers(t, 40)}, str(tmp_path / "released"), "prompt_learner", epoch=10)
    t.load_model(str(tmp_path / "released"), epoch=10)
    check_loaded(t.prompt_learner, state)


def whole_clip_noise():
    return {"image_encoder.conv1.weight": half((48, 3, 8, 8), 90), "text_encoder.positional_embedding": half((32, 40),
                                                                                                               91)}


def test_maple_layout(tmp_path):
    t = build(tmp_path, "MaPLe")
    own = {k: half(v.shape, i) for i, (k, v) in enumerate(t.prompt_learner.state_dict().items())}
    state = {f"prompt_learner.{k}": v for k, v in own.items()}
    state.update({f"prompt_learner.{k}": v for k, v in class_buffers(t, 40).items()}, **whole_clip_noise())
    save_dassl(state, str(tmp_path / "released"), "MultiModalPromptLearner")
    t.load_model(str(tmp_path / "released"), epoch=5)
    check_loaded(t.prompt_learner, own)


def test_ivlp_and_vpt_layouts(tmp_path):
    t = build(tmp_path, "IVLP")
    state = {"prompt_learner.ctx": half((2, 40), 1), "image_encoder.VPT": half((2, 48), 2),
             "image_encoder.transformer.resblocks.1.VPT_shallow": half((2, 48), 3),
             "text_encoder.transformer.resblocks.1.VPT_shallow": half((2, 40), 4),
             "text_encoder.transformer.resblocks.2.VPT_shallow": half((2, 40), 5), **whole_clip_noise()}
    save_dassl(state, str(tmp_path / "ivlp"), "VLPromptLearner")
    t.load_model(str(tmp_path / "ivlp"), epoch=5)
    check_loaded(t.prompt_learner, {"ctx": state["prompt_learner.ctx"], "vision.ctx": state["image_encoder.VPT"],
                                    "vision.deep.0": state["image_encoder.transformer.resblocks.1.VPT_shallow"],
                                    "deep_text.0": state["text_encoder.transformer.resblocks.1.VPT_shallow"],
                                    "deep_text.1": state["text_encoder.transformer.resblocks.2.VPT_shallow"]})

    v = build(tmp_path / "v", "VPT")
    state = {"image_encoder.VPT": half((3, 48), 6), **whole_clip_noise(),
             **{f"image_encoder.transformer.resblocks.{i}.VPT_shallow": half((3, 48), 6 + i) for i in (1, 2)}}
    save_dassl(state, str(tmp_path / "vpt"), "prompt_learner")
    v.load_model(str(tmp_path / "vpt"), epoch=5)
    check_loaded(v.prompt_learner, {"ctx": state["image_encoder.VPT"],
                                    "deep.0": state["image_encoder.transformer.resblocks.1.VPT_shallow"],
                                    "deep.1": state["image_encoder.transformer.resblocks.2.VPT_shallow"]})


def test_restore_maple_fsa_layout(tmp_path):
    t = build(tmp_path, "RESTORE")
    own = {k: half(v.shape, i) for i, (k, v) in enumerate(t.prompt_learner.state_dict().items())}
    state = {f"prompt_learner.{k}": v for k, v in own.items()}
    d = t.clip_model.embed_dim
    adapters = {}
    for j, (official, ours) in enumerate((("text_adapter", "text"), ("visual_adapter", "vision"))):
        layers = {"post_ln.weight": (d,), "post_ln.bias": (d,), "FFN.0.weight": (4 * d, d), "FFN.0.bias": (4 * d,),
                  "FFN.2.weight": (d, 4 * d), "FFN.2.bias": (d,)}
        for i, (name, shape) in enumerate(layers.items()):
            state[f"{official}.{name}"] = half(shape, 100 + 10 * j + i)
            mapped = name.replace("post_ln", "norm").replace("FFN.0", "fc1").replace("FFN.2", "fc2")
            adapters[f"{ours}.{mapped}"] = state[f"{official}.{name}"]
    state.update({"text_cali_ratio": torch.tensor([0.31]).half(), "vis_cali_ratio": torch.tensor([0.17]).half(),
                  "init_text_prompt_norm": torch.tensor([1.5, 2.5]).half(),
                  "init_visual_prompt_norm": torch.tensor([3.5, 4.5]).half(), **whole_clip_noise()})
    save_dassl(state, str(tmp_path / "released"), "MultiModalPromptLearner")
    t.load_model(str(tmp_path / "released"), epoch=5)
    check_loaded(t.prompt_learner, own)
    check_loaded(t.surgery, {**adapters, "text_ratio": state["text_cali_ratio"],
                             "vision_ratio": state["vis_cali_ratio"]})
    assert bool(t.surgery.ratios_updated)
    check_loaded(t.fsc_reference, {"text": state["init_text_prompt_norm"], "vision": state["init_visual_prompt_norm"]})
    with torch.no_grad():
        t.before_test()
        assert torch.isfinite(t.model_inference(torch.randn(2, 3, 32, 32))).all()


def test_lamm_label_table_layout(tmp_path):
    t = build(tmp_path, "LAMM")
    n, k = len(t.classnames), min(t.labels.name_lens)
    table, fix, ctx = half((n, k, 40), 1), half((n, k, 40), 2), half((4, 40), 3)
    save_dassl({"ctx": ctx, "token_classes": table, "fix_token": fix, **class_buffers(t, 40)},
               str(tmp_path / "released"), "prompt_learner")
    t.load_model(str(tmp_path / "released"), epoch=5)
    assert torch.equal(t.labels.values, table.float().reshape(n * k, 40))
    assert torch.equal(t.labels.anchor, fix.float().reshape(n * k, 40))
    assert torch.equal(t.prompt_learner.prompt.ctx, ctx.float())

    save_dassl({"ctx": ctx, "token_classes": table[:-1], "fix_token": fix[:-1]}, str(tmp_path / "other"),
               "prompt_learner")
    with pytest.raises(ValueError, match=f"labels for {n - 1} classes but the current class set has {n}"):
        t.load_model(str(tmp_path / "other"), epoch=5)
