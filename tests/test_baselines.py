"""The baselines MaPLe, IVLP (and language-only deep prompting), VPT and CoCoOp on tiny random backbones.

Zero-shot equivalence. A learned text context initialised from "a photo of a" (all four tokens) makes the text
input identical to zero-shot CLIP's "a photo of a {c}." prompt. Deep TEXT prompts replace the slots 1..n after SOT;
CLIP's text transformer is causal, so the hidden states at those slots depend only on SOT and the context tokens,
not on the class name: setting each deep text prompt ``P_i`` to block ``i-1``'s output at those slots in the plain
zero-shot run ("pass-through") makes the deep prompts inert. VISION prompts are appended tokens that CLS attends
to, so no value of them is inert; the vision side is therefore checked against the backbone called by hand with
the prompt tensors the method must produce (e.g. MaPLe's ``x @ W.T + b`` projections, computed here).
"""
import os

import open_clip
import pytest
import torch
import torch.nn.functional as F

import clip
from engine import build_trainer
from engine.registry import TRAINER_REGISTRY
from engine.utils import load_checkpoint, set_random_seed
from tests.helpers import TINY_RN, TINY_VIT, TINY_VIT_DEPTHS, tiny_cfg
from trainers.deep_prompts import CoupledProjections, DeepPrompts, VisionPromptLearner, released_ctx_init
from trainers.facts import facts_of, precision_node
from trainers.ivlp import IVLPPromptLearner, from_released_state
from trainers.maple import MaPLePromptLearner

TEMPLATE = "a photo of a {}."

TINY_SETTINGS = {  # each trainer at a depth that fits the 3-block tiny ViT
    **TINY_VIT_DEPTHS,
    "IVLP-language": ["TRAINER.IVLP.N_CTX_VISION", "0", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "0",
                      "TRAINER.IVLP.N_CTX_TEXT", "4", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "3"],
    "CoCoOp": ["TRAINER.COCOOP.N_CTX", "4", "TRAINER.COCOOP.CTX_INIT", "a photo of a"],
}


def build(tmp_path, setting, name="run", opts=(), backbone=TINY_VIT, seed=1):
    trainer = setting.split("-")[0]
    cfg = tiny_cfg(str(tmp_path / "data"), str(tmp_path / name), trainer=trainer, backbone=backbone, seed=seed,
                   opts=["OPTIM.MAX_EPOCH", "1", *TINY_SETTINGS.get(setting, []), *opts])
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def images(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def zeroshot_logits(t, x):
    """Zero-shot CLIP with "a photo of a {c}." computed from open_clip's own encoders."""
    m = t.clip_model.model
    w = F.normalize(m.encode_text(t.clip_model.tokenize([TEMPLATE.format(c) for c in t.classnames])), dim=-1)
    return m.logit_scale.exp() * F.normalize(m.encode_image(x), dim=-1) @ w.t()


def pass_through_text_prompts(t, n_ctx, depth):
    """Inert deep text prompts ``[P_1..P_{depth-1}]``: ``P_i`` = block ``i-1``'s output at slots 1..n of the
    zero-shot run, ``[n, d_t]`` (the same for every class)."""
    bb = t.clip_model
    tokens = bb.tokenize([TEMPLATE.format(c) for c in t.classnames])
    _, hidden = bb.encode_text_from_embeddings(bb.token_embedding(tokens), bb.eot_index(tokens), return_hidden=True)
    slots = [h[:, 1:1 + n_ctx] for h in hidden[:depth - 1]]
    for s in slots:  # the causal mask: every class sees the same SOT + context at these positions
        assert torch.allclose(s, s[:1].expand_as(s), atol=1e-5)
    return [s[0] for s in slots]


def linear(x, layer):
    return x @ layer.weight.t() + layer.bias


# ---- the shared modules ------------------------------------------------------------------------------------------
def test_deep_prompts_layout_and_init():
    torch.manual_seed(0)
    deep = DeepPrompts(depth=4, n_ctx=2, width=5)
    assert len(deep) == 3 and deep.depth == 4 and all(p.shape == (2, 5) for p in deep)
    layers = deep.layers()
    assert layers[0] is None and all(a is b for a, b in zip(layers[1:], deep))
    assert len(DeepPrompts(depth=1, n_ctx=2, width=5)) == 0 and DeepPrompts(1, 2, 5).layers() == [None]
    big = DeepPrompts(depth=2, n_ctx=500, width=200)[0]
    assert big.mean().abs() < 0.001 and 0.0195 < big.std() < 0.0205  # N(0, 0.02): 100k draws
    assert [k for k, _ in deep.named_parameters()] == ["0", "1", "2"]


def test_coupled_projections_are_identical_copies_that_train_independently():
    torch.manual_seed(0)
    f = CoupledProjections(3, 4, 6)
    assert all(torch.equal(f[0].weight, g.weight) and torch.equal(f[0].bias, g.bias) for g in f)
    assert len({g.weight.data_ptr() for g in f}) == 3  # copies, not one shared layer
    with torch.no_grad():
        f[1].weight.add_(1.0)
    assert not torch.equal(f[0].weight, f[1].weight) and torch.equal(f[0].weight, f[2].weight)
    text = [torch.randn(2, 4) for _ in range(3)]
    out = f(text)
    assert all(torch.allclose(o, t @ g.weight.t() + g.bias) for o, t, g in zip(out, text, f))
    with pytest.raises(ValueError, match="3 coupling layers were given 2"):
        f(text[:2])


def test_vision_prompt_learner_fills_the_backbone_slots():
    torch.manual_seed(0)
    vit = clip.load(TINY_VIT)
    v = VisionPromptLearner(n_ctx=2, width=vit.vision_width, depth=2)
    p = v()
    x = images(2)
    _, hidden = vit.encode_image(x, p.prompts, p.deep, return_hidden=True)
    assert hidden[0].shape[1] == 1 + 16 + 2
    block1_input = torch.cat([hidden[0][:, :-2], v.deep[0].expand(2, -1, -1)], 1)
    assert torch.allclose(vit.model.visual.transformer.resblocks[1](block1_input), hidden[1], atol=1e-5)
    # depth 2 < 3 blocks: block 2 takes block 1's output unchanged
    assert torch.allclose(vit.model.visual.transformer.resblocks[2](hidden[1]), hidden[2], atol=1e-5)
    with pytest.raises(ValueError, match="depth 0 in the trainer config"):
        VisionPromptLearner(0, 8, 1)


def test_released_context_initialisation_rule():
    assert released_ctx_init("a photo of a", 2) == "a photo of a"
    assert released_ctx_init("a photo of a", 4) == "a photo of a"
    assert released_ctx_init("a photo of a", 5) == ""  # N_CTX > 4: random, as released
    assert released_ctx_init("a photo", 3) == ""  # fewer words than N_CTX
    assert released_ctx_init("", 2) == ""


# ---- MaPLe -------------------------------------------------------------------------------------------------------
def maple_param_formula(n, d_t, d_v, depth):
    return n * d_t + (d_t * d_v + d_v) + (depth - 1) * (n * d_t + d_t * d_v + d_v)


def test_maple_parameter_count_on_a_vit_b16_shaped_model():
    with torch.device("meta"):  # the architecture only: no 150M-parameter initialisation
        model = open_clip.model.CLIP(**open_clip.get_model_config("ViT-B-16"))
    backbone = clip.CLIPBackbone(model.to_empty(device="cpu"))
    assert (backbone.text_width, backbone.vision_width) == (512, 768)
    learner = MaPLePromptLearner(backbone, ["dog", "cat"], n_ctx=2, ctx_init="a photo of a", depth=9)
    n_params = sum(p.numel() for p in learner.parameters())
    assert n_params == 3_555_072 == maple_param_formula(2, 512, 768, 9)
    torch.manual_seed(0)
    tiny = MaPLePromptLearner(clip.load(TINY_VIT), ["red"], n_ctx=2, depth=3)
    assert sum(p.numel() for p in tiny.parameters()) == maple_param_formula(2, 40, 48, 3)


def test_maple_context_keeps_the_rest_of_the_phrase_as_text():
    torch.manual_seed(0)
    vit = clip.load(TINY_VIT)
    learner = MaPLePromptLearner(vit, ["red", "dark green"], n_ctx=2, ctx_init="a photo of a", depth=2)
    full = vit.token_embedding(vit.tokenize(["a photo of a red.", "a photo of a dark green."]))
    assert torch.equal(learner.ctx, full[0, 1:3])  # "a photo"
    assert torch.equal(learner().embeddings, full)  # [SOS] ctx1 ctx2 "of a" class "." [EOT]
    assert learner.prompt_prefix == "a photo of a"


def test_maple_slots_through_its_modules(tmp_path):
    t = build(tmp_path, "MaPLe")
    learner, bb = t.prompt_learner, t.clip_model
    text, vision = learner(), learner.vision_prompts()
    assert text.deep[1] is learner.compound_prompts_text[0] and len(text.deep) == 3
    assert torch.allclose(vision.prompts, linear(learner.ctx, learner.proj))
    for i in (1, 2):
        assert torch.allclose(vision.deep[i], linear(learner.compound_prompts_text[i - 1],
                                                     learner.compound_prompt_projections[i - 1]))
    # text block 1 input: block 0 output with slots 1..2 replaced by P_1
    _, hidden = bb.encode_text_from_embeddings(text.embeddings, text.eot_index, text.deep, return_hidden=True)
    x = hidden[0].clone()
    x[:, 1:3] = learner.compound_prompts_text[0]
    m = bb.model
    assert torch.allclose(m.transformer.resblocks[1](x, attn_mask=m.attn_mask), hidden[1], atol=1e-5)


def test_maple_with_pass_through_prompts_is_zero_shot_clip_on_the_text_side(tmp_path):
    t = build(tmp_path, "MaPLe", opts=["TRAINER.MAPLE.N_CTX", "4"])
    learner, bb = t.prompt_learner, t.clip_model
    with torch.no_grad():
        for p, value in zip(learner.compound_prompts_text, pass_through_text_prompts(t, 4, 3)):
            p.copy_(value)
        x = images()
        zs_text = F.normalize(bb.encode_text(bb.tokenize([TEMPLATE.format(c) for c in t.classnames])), dim=-1)
        assert torch.allclose(F.normalize(t.text_features(), dim=-1), zs_text, atol=1e-5)
        deep_v = [None] + [linear(p, f) for p, f in zip(learner.compound_prompts_text,
                                                        learner.compound_prompt_projections)]
        img = bb.encode_image(x, linear(learner.ctx, learner.proj), deep_v)
        expected = bb.logit_scale * F.normalize(img, dim=-1) @ zs_text.t()
        assert torch.allclose(t.logits(x), expected, atol=1e-4)


# ---- IVLP / language-only ----------------------------------------------------------------------------------------
def test_language_only_with_pass_through_prompts_equals_zero_shot_clip(tmp_path):
    t = build(tmp_path, "IVLP-language")
    assert t.prompt_learner.vision is None and t.vision_prompts().prompts is None
    with torch.no_grad():
        for p, value in zip(t.prompt_learner.deep_text, pass_through_text_prompts(t, 4, 3)):
            p.copy_(value)
        x = images()
        assert torch.allclose(t.logits(x), zeroshot_logits(t, x), atol=1e-4)
        deep = t.prompt_learner.deep_text[1]  # a non-inert deep prompt changes the logits (a random change:
        deep.add_(torch.randn(deep.shape, generator=torch.Generator().manual_seed(0)))  # LN ignores uniform shifts)
        assert not torch.allclose(t.logits(x), zeroshot_logits(t, x), atol=1e-3)


def test_ivlp_vision_side_is_the_backbone_with_its_prompts(tmp_path):
    t = build(tmp_path, "IVLP")
    learner, bb = t.prompt_learner, t.clip_model
    assert len(learner.deep_text) == 2 and len(learner.vision.deep) == 1
    with torch.no_grad():
        for p, value in zip(learner.deep_text, pass_through_text_prompts(t, 2, 3)):
            p.copy_(value)
        x = images()
        zs_text = F.normalize(bb.encode_text(bb.tokenize([TEMPLATE.format(c) for c in t.classnames])), dim=-1)
        img = bb.encode_image(x, learner.vision.ctx, [None, learner.vision.deep[0]])
        expected = bb.logit_scale * F.normalize(img, dim=-1) @ zs_text.t()
        assert torch.allclose(t.logits(x), expected, atol=1e-4)


# ---- VPT ---------------------------------------------------------------------------------------------------------
def test_vpt_text_is_fixed_zero_shot_and_vision_is_prompted(tmp_path):
    t = build(tmp_path, "VPT")
    bb, v = t.clip_model, t.prompt_learner
    x = images()
    with torch.no_grad():
        zs_text = F.normalize(bb.encode_text(bb.tokenize([TEMPLATE.format(c) for c in t.classnames])), dim=-1)
        assert torch.allclose(t.text_features(), zs_text, atol=1e-6)
        img = bb.encode_image(x, v.ctx, [None, v.deep[0], v.deep[1]])
        expected = bb.logit_scale * F.normalize(img, dim=-1) @ zs_text.t()
        assert torch.allclose(t.logits(x), expected, atol=1e-4)
    assert [k for k, _ in v.named_parameters()] == ["ctx", "deep.0", "deep.1"]


# ---- CoOp --------------------------------------------------------------------------------------------------------
def test_coop_csc_with_ctx_init_is_one_shared_context_by_default_as_official(tmp_path, caplog):
    words = ["TRAINER.COOP.CTX_INIT", "a photo of a", "TRAINER.COOP.CSC", "True"]
    with caplog.at_level("WARNING"):
        t = build(tmp_path, "CoOp", opts=words)
    bb = t.clip_model
    with torch.no_grad():
        expected = bb.token_embedding(bb.tokenize("a photo of a"))[0, 1:5].float()  # the 4 words' embeddings
    ctx = t.prompt_learner.state_dict()["ctx"]  # what the checkpoint holds: the official [n_ctx, d_t]
    assert ctx.shape == (4, bb.text_width) and torch.equal(ctx, expected)
    assert "TRAINER.COOP.CSC True is ignored" in caplog.text and "CSC_WITH_INIT per_class" in caplog.text
    per_class = build(tmp_path, "CoOp", "per_class", opts=[*words, "TRAINER.COOP.CSC_WITH_INIT", "per_class"])
    ctx = per_class.prompt_learner.ctx
    assert ctx.shape == (len(per_class.classnames), 4, bb.text_width)
    assert all(torch.equal(c, expected) for c in ctx.detach())
    random_csc = build(tmp_path, "CoOp", "random", opts=["TRAINER.COOP.CSC", "True", "TRAINER.COOP.N_CTX", "3"])
    assert random_csc.prompt_learner.ctx.shape == (len(random_csc.classnames), 3, bb.text_width)  # CSC applies
    with pytest.raises(ValueError, match="TRAINER.COOP.CSC_WITH_INIT"):
        build(tmp_path, "CoOp", "bad", opts=[*words, "TRAINER.COOP.CSC_WITH_INIT", "each"])


# ---- CoCoOp ------------------------------------------------------------------------------------------------------
def test_cocoop_with_a_zero_meta_net_output_equals_zero_shot_clip(tmp_path):
    t = build(tmp_path, "CoCoOp")
    assert t.prompt_learner.n_ctx == 4  # CoOp's rule: the word count of CTX_INIT
    with torch.no_grad():
        t.prompt_learner.meta_net.linear2.weight.zero_()
        t.prompt_learner.meta_net.linear2.bias.zero_()
        x = images()
        assert torch.allclose(t.logits(x), zeroshot_logits(t, x), atol=1e-4)


def cocoop_loop_logits(t, x):
    """The released per-image loop: each image's C prompts encoded on their own."""
    learner, bb = t.prompt_learner, t.clip_model
    img = F.normalize(bb.encode_image(x), dim=-1)
    rows = []
    for b in range(x.shape[0]):
        ctx = learner.ctx + learner.meta_net(img[b:b + 1])  # [n, d_t]
        emb = learner.assemble(ctx.unsqueeze(0).expand(learner.n_cls, -1, -1))
        txt = F.normalize(bb.encode_text_from_embeddings(emb, learner.eot_index), dim=-1)
        rows.append(bb.logit_scale * img[b] @ txt.t())
    return torch.stack(rows)


def test_cocoop_batched_text_encoding_equals_the_per_image_loop(tmp_path):
    t = build(tmp_path, "CoCoOp")
    assert t.num_classes == 6
    x = images(5)
    original = t.clip_model.encode_text_from_embeddings
    seen = []

    def counted(emb, *args, **kwargs):
        seen.append(emb.shape[0])
        return original(emb, *args, **kwargs)

    with torch.no_grad():
        expected = cocoop_loop_logits(t, x)
        t.clip_model.encode_text_from_embeddings = counted
        for chunk, calls in [(1000, 1), (18, 2), (12, 3), (1, 5)]:  # 6 classes: chunk // 6 images per call
            t.cfg.defrost()
            t.cfg.TRAINER.COCOOP.TEXT_CHUNK = chunk
            t.cfg.freeze()
            seen.clear()
            assert torch.allclose(t.logits(x), expected, atol=1e-4)
            assert len(seen) == calls and sum(seen) == 5 * 6  # whole images per call, B*C prompts in all


def test_cocoop_rejects_a_zero_chunk(tmp_path):
    with pytest.raises(ValueError, match="TEXT_CHUNK is 0"):
        build(tmp_path, "CoCoOp", opts=["TRAINER.COCOOP.TEXT_CHUNK", "0"])


# ---- training, checkpoints, base -> new ----------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["MaPLe", "IVLP", "IVLP-language", "VPT", "CoCoOp"])
def test_train_save_reload_base_to_new(tmp_path, setting):
    t = build(tmp_path, setting, "base", opts=["DATASET.SUBSAMPLE_CLASSES", "base"])
    learner = t.prompt_learner
    clip_before = {k: v.clone() for k, v in t.clip_model.state_dict().items()}
    start = {k: v.detach().clone() for k, v in learner.named_parameters()}
    # ownership: the registered module holds exactly the prompts; frozen CLIP holds no trainable parameter
    assert t.get_model_names() == [t.MODEL_NAME]
    assert all(p.requires_grad for p in learner.parameters())
    assert not any(p.requires_grad for p in t.clip_model.parameters())
    optimised = {id(p) for g in t._optims[t.MODEL_NAME].param_groups for p in g["params"]}
    assert optimised == {id(p) for p in learner.parameters()}
    t.train()
    assert all(torch.equal(v, clip_before[k]) for k, v in t.clip_model.state_dict().items())
    assert any(not torch.equal(p.detach(), start[k]) for k, p in learner.named_parameters())  # it learned

    ckpt = load_checkpoint(os.path.join(t.output_dir, t.MODEL_NAME, "model.pth.tar-1"))
    assert set(ckpt["state_dict"]) == {k for k, _ in learner.named_parameters()}  # prompts only, no buffers

    x = images()
    with torch.no_grad():
        trained = t.logits(x)
        for p in learner.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
        assert not torch.allclose(t.logits(x), trained, atol=1e-4)
        t.load_model(t.output_dir, epoch=1)  # the checkpoint restores the in-memory model exactly
        assert torch.equal(t.logits(x), trained)

    new = build(tmp_path, setting, "new_eval", opts=["DATASET.SUBSAMPLE_CLASSES", "new"])  # same backbone
    new.load_model(t.output_dir, epoch=1)
    assert new.classnames == ["yellow", "purple", "orange"]
    trained_params = dict(learner.named_parameters())
    assert all(torch.equal(p, trained_params[k]) for k, p in new.prompt_learner.named_parameters())
    if hasattr(new.prompt_learner, "token_suffix"):  # class buffers rebuilt for the new classes
        tokens = new.clip_model.tokenize([f"{new.prompt_learner.prompt_prefix} {c}." for c in new.classnames])
        assert torch.equal(new.prompt_learner.tokenized_prompts, tokens)
    new.test()
    with torch.no_grad():
        direct = new.logits(x)
        new.before_test()
        assert torch.allclose(new.model_inference(x), direct, atol=1e-5)


def test_prompt_initialisation_follows_the_seed_including_zero(tmp_path):
    def params(seed, name):
        t = build(tmp_path, "IVLP", name=name, seed=seed)
        return {k: v.detach().clone() for k, v in t.prompt_learner.named_parameters()}

    a, b, c = params(0, "a"), params(0, "b"), params(1, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["deep_text.0"], c["deep_text.0"]) and not torch.equal(a["vision.ctx"], c["vision.ctx"])


# ---- backbones and config errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["MaPLe", "IVLP", "VPT"])
def test_vision_prompting_needs_a_vit(tmp_path, setting):
    with pytest.raises(clip.BackboneError, match="needs a ViT backbone"):
        build(tmp_path, setting, backbone=TINY_RN)


@pytest.mark.parametrize("setting", ["IVLP-language", "CoCoOp"])
def test_text_only_methods_run_on_a_resnet(tmp_path, setting):
    t = build(tmp_path, setting, backbone=TINY_RN, opts=["TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2"])
    with torch.no_grad():
        assert t.logits(images(2)).shape == (2, 6)


def test_prompt_depths_are_checked_against_the_backbone(tmp_path):
    with pytest.raises(ValueError, match="PROMPT_DEPTH is 4; it must be between 1 and 3"):
        build(tmp_path, "MaPLe", opts=["TRAINER.MAPLE.PROMPT_DEPTH", "4"])
    with pytest.raises(ValueError, match="PROMPT_DEPTH_TEXT is 0"):
        build(tmp_path, "IVLP", opts=["TRAINER.IVLP.PROMPT_DEPTH_TEXT", "0"])
    with pytest.raises(ValueError, match="N_CTX_VISION is 0 with PROMPT_DEPTH_VISION 2"):
        build(tmp_path, "IVLP", opts=["TRAINER.IVLP.N_CTX_VISION", "0"])


# ---- released checkpoints ----------------------------------------------------------------------------------------
def test_released_checkpoint_keys_map_onto_the_learners(tmp_path):
    torch.manual_seed(0)
    vit = clip.load(TINY_VIT)
    ivlp = IVLPPromptLearner(vit, ["red"], n_ctx_text=2, depth_text=3, n_ctx_vision=2, depth_vision=2)
    released = {
        "prompt_learner.ctx": torch.ones(2, 40), "prompt_learner.token_prefix": torch.zeros(1, 1, 40),
        "image_encoder.VPT": torch.full((2, 48), 2.0),
        "image_encoder.transformer.resblocks.1.VPT_shallow": torch.full((2, 48), 3.0),
        "text_encoder.transformer.resblocks.1.VPT_shallow": torch.full((2, 40), 4.0),
        "text_encoder.transformer.resblocks.2.VPT_shallow": torch.full((2, 40), 5.0),
        "image_encoder.conv1.weight": torch.zeros(48, 3, 8, 8),
    }
    mapped = from_released_state(released)
    assert set(mapped) == set(ivlp.state_dict())
    ivlp.load_state_dict(mapped)
    assert ivlp.deep_text[1][0, 0] == 5.0 and ivlp.vision.deep[0][0, 0] == 3.0 and ivlp.vision.ctx[0, 0] == 2.0
    assert set(from_released_state(released, vision_prefix="")) == {"ctx", "deep_text.0", "deep_text.1", "deep.0"}
    own = {"ctx": torch.zeros(2, 40)}
    assert from_released_state(own) is own

    t = build(tmp_path, "MaPLe")
    state = {f"prompt_learner.{k}": torch.full_like(v, 0.25) for k, v in t.prompt_learner.state_dict().items()}
    state["prompt_learner.token_suffix"] = torch.zeros(3)
    state["text_encoder.ln_final.weight"] = torch.zeros(40)
    t.load_model_state_dict(t.MODEL_NAME, state)
    assert all(torch.all(p == 0.25) for p in t.prompt_learner.parameters())


# ---- configs -----------------------------------------------------------------------------------------------------
PUBLISHED = {  # file -> (batch, LR, epochs, {method key: value}); docs/OFFICIAL_CODE.md
    "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml": (1, 0.002, 10, {"N_CTX": 4, "CTX_INIT": "a photo of a"}),
    "CoCoOp/vit_b16_c4_ep10_batch1.yaml": (1, 0.002, 10, {"N_CTX": 4, "CTX_INIT": ""}),
    "CoCoOp/vit_b16_c8_ep10_batch1.yaml": (1, 0.002, 10, {"N_CTX": 8, "CTX_INIT": ""}),
    "CoCoOp/vit_b16_c16_ep10_batch1.yaml": (1, 0.002, 10, {"N_CTX": 16, "CTX_INIT": ""}),
    "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml": (4, 0.0035, 5, {"N_CTX": 2, "PROMPT_DEPTH": 9}),
    "MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml": (4, 0.0026, 2, {"N_CTX": 2, "PROMPT_DEPTH": 3}),
    "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml": (4, 0.0035, 5, {"N_CTX_VISION": 2, "N_CTX_TEXT": 2,
                                                              "PROMPT_DEPTH_VISION": 12, "PROMPT_DEPTH_TEXT": 12}),
    "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml": (4, 0.0025, 5, {"N_CTX_VISION": 0, "N_CTX_TEXT": 4,
                                                                          "PROMPT_DEPTH_VISION": 0,
                                                                          "PROMPT_DEPTH_TEXT": 12}),
    "VPT/vit_b16_c2_ep5_batch4_4.yaml": (4, 0.0025, 5, {"N_CTX_VISION": 8, "PROMPT_DEPTH_VISION": 12}),
}
NODES = {name: precision_node(TRAINER_REGISTRY.get(name)) for name in ("CoCoOp", "MaPLe", "IVLP", "VPT")}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configs(name):
    from engine.config import build_cfg

    cfg = build_cfg("", os.path.join(REPO, "configs", "trainers", name))
    batch, lr, epochs, method = PUBLISHED[name]
    assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH) == (batch, lr, epochs)
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16" and cfg.DATALOADER.TEST.BATCH_SIZE == 100
    assert (cfg.OPTIM.NAME, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE,
            cfg.OPTIM.WARMUP_CONS_LR) == ("sgd", "cosine", 1, "constant", 1e-5)
    assert cfg.TRAIN.PRINT_FREQ == 20 and cfg.INPUT.INTERPOLATION == "bicubic"
    node = cfg.TRAINER[NODES[name.split("/")[0]]]
    assert {k: node[k] for k in method} == method and node.PREC == "fp16"


@pytest.mark.parametrize("trainer", sorted(TRAINER_REGISTRY.registered_names()))
def test_toy_configs(trainer):
    from engine.config import build_cfg

    cls = TRAINER_REGISTRY.get(trainer)
    cfg = build_cfg("", os.path.join(REPO, facts_of(cls).toy_config))
    assert cfg.MODEL.BACKBONE.NAME == "toyclip" and tuple(cfg.INPUT.SIZE) == (32, 32)
    assert cfg.DATALOADER.NUM_WORKERS == 0 and cfg.TRAINER[precision_node(cls)].PREC == "fp32"
