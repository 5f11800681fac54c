"""APLe: the image adapter against hand-derived spectra, the three per-batch updates against an independent
computation of their losses and gradients, the frozen teacher, checkpoints and base -> new transfer."""
import copy
import glob
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from engine import build_trainer
from engine.config import build_cfg
from engine.utils import load_checkpoint, set_random_seed, setup_logger
from tests.helpers import make_color_dataset, tiny_cfg
from trainers.aple import soft_target_cross_entropy
from trainers.aple_filter import ImageAdapter, draft_filter, gaussian_lowpass
from trainers.base import class_text_features

H = W = 16
ROWS = torch.arange(H, dtype=torch.float32)[:, None]
COLS = torch.arange(W, dtype=torch.float32)[None, :]
CHECKER = (-1.0) ** (ROWS + COLS)  # the pure Nyquist pattern: only (H/2, W/2) is non-zero in its spectrum
DEPTH = 3  # every block of the tiny backbone


# ---- image adapter: the described low-pass ---------------------------------------------------------------------
def test_lowpass_keeps_dc_and_removes_high_frequencies():
    constant = torch.tensor([0.5, -1.0, 2.0])[:, None, None].expand(3, H, W)
    assert torch.allclose(gaussian_lowpass(constant, 0.05), constant, atol=1e-6)  # G(0, 0) = 1
    # Nyquist: |u| = |v| = 1/2, gain exp(-(1/4 + 1/4) / (2 sigma^2)) = exp(-1/(4 sigma^2))
    assert torch.allclose(gaussian_lowpass(CHECKER, 0.5), math.exp(-1.0) * CHECKER, atol=1e-6)
    assert gaussian_lowpass(CHECKER, 0.05).abs().max() < 1e-30  # exp(-100)
    # a cosine of 2 cycles over 16 rows, u = 1/8: gain exp(-(1/64) / (2 * 0.01))
    wave = torch.cos(2 * math.pi * ROWS / 8).expand(H, W)
    assert torch.allclose(gaussian_lowpass(wave, 0.1), math.exp(-0.78125) * wave, atol=1e-6)


def test_adapter_fuses_with_beta_and_keeps_shape_and_dtype():
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    out = ImageAdapter("lowpass", beta=0.9, sigma=0.2)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.allclose(out, 0.9 * x + 0.1 * gaussian_lowpass(x, 0.2), atol=1e-6)
    assert ImageAdapter("none")(x) is x
    constant = torch.full((1, 3, H, W), 0.7)
    assert torch.allclose(ImageAdapter("lowpass", 0.9, 0.05)(constant), constant, atol=1e-6)
    assert torch.allclose(ImageAdapter("lowpass", 0.9, 0.05)(CHECKER.expand(1, 3, H, W)), 0.9 * CHECKER, atol=1e-6)


# ---- image adapter: the draft's filter -------------------------------------------------------------------------
# The draft, per image [C, H, W]: S = shift(fft2(x)).real; y = ifft2(shift(S * G)).real, where shift rolls every
# dimension by +(n // 2) and G is exp(-(u^2 + v^2) / (2 sigma^2)) on the unshifted fftfreq grid. A real spectral
# entry at (c, k, l) therefore ends at (c + 2 (C // 2), k + 2 (H // 2), l + 2 (W // 2)) scaled by G at
# (k + H // 2, l + W // 2); for RGB the channel moves from c to c + 2 = c - 1 (mod 3).
def test_draft_filter_nearly_removes_dc():
    # DC (0, 0) is scaled by G at (H/2, W/2): u = v = -1/2, exp(-(1/4 + 1/4) / (2 sigma^2)) = exp(-1/(4 sigma^2))
    constant = torch.tensor([1.0, 2.0, 3.0])[:, None, None].expand(3, H, W)
    assert draft_filter(constant, 0.05).abs().max() < 1e-30  # exp(-100)
    assert torch.allclose(ImageAdapter("draft", 0.9, 0.05)(constant[None]), 0.9 * constant[None], atol=1e-6)
    # sigma 0.5: gain exp(-1), and output channel c holds input channel c + 1
    expected = math.exp(-1.0) * torch.tensor([2.0, 3.0, 1.0])[:, None, None].expand(3, H, W)
    assert torch.allclose(draft_filter(constant, 0.5), expected, atol=1e-6)


def test_draft_filter_keeps_a_nyquist_checkerboard_in_the_previous_channel():
    # Amplitude a at Nyquist in channel 1: F = a*H*W at (1, H/2, W/2); G at (H/2 + H/2, W/2 + W/2) = (0, 0) is 1;
    # the two rolls bring it back to (H/2, W/2) in channel 1 + 2 = 0: the checkerboard a * (-1)^(h+w), unchanged.
    x = torch.zeros(3, H, W)
    x[1] = 2.0 * CHECKER
    y = draft_filter(x, 0.05)
    assert torch.allclose(y[0], 2.0 * CHECKER, atol=1e-5)
    assert torch.allclose(y[1:], torch.zeros(2, H, W), atol=1e-5)
    out = ImageAdapter("draft", 0.9, 0.05)(x[None])[0]
    assert torch.allclose(out[0], 0.2 * CHECKER, atol=1e-5)
    assert torch.allclose(out[1], 1.8 * CHECKER, atol=1e-5)
    assert torch.allclose(out[2], torch.zeros(H, W), atol=1e-5)
    # R, G, B -> G, B, R: output channel c receives input channel c + 1
    amplitudes = torch.tensor([1.0, 2.0, 3.0])
    y = draft_filter(amplitudes[:, None, None] * CHECKER, 0.05)
    assert torch.allclose(y, torch.tensor([2.0, 3.0, 1.0])[:, None, None] * CHECKER, atol=1e-5)
    # 4 channels are rolled by 2 twice, a full turn: no permutation
    four = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None, None] * CHECKER
    assert torch.allclose(draft_filter(four, 0.05), four, atol=1e-5)


def test_draft_filter_on_even_sizes_scales_cosines_and_drops_sines():
    # cos(2 pi (2h/16 + w/16)) in channel 0: real entries HW/2 at (2, 1) and (-2, -1); the gain at (2 + 8, 1 + 8)
    # is G(-6/16, -7/16), at (-2 + 8, -1 + 8) G(6/16, 7/16), the same; both come back to themselves in channel 2.
    sigma = 0.3
    phase = 2 * math.pi * (2 * ROWS / 16 + COLS / 16)
    x = torch.zeros(3, H, W)
    x[0] = torch.cos(phase)
    gain = math.exp(-((6 / 16) ** 2 + (7 / 16) ** 2) / (2 * sigma ** 2))
    expected = torch.zeros(3, H, W)
    expected[2] = gain * torch.cos(phase)
    assert torch.allclose(draft_filter(x, sigma), expected, atol=1e-6)
    # a sine has a purely imaginary spectrum, which the real cast drops
    x[0] = torch.sin(phase)
    assert draft_filter(x, sigma).abs().max() < 1e-6


def test_draft_filter_on_odd_sizes_moves_each_frequency_by_minus_one():
    # H = 15, W = 9 (H // 2 = 7, W // 2 = 4); cos(2 pi (2h/15 + w/9)) in channel 0 has real entries HW/2 at (2, 1)
    # and (-2, -1). (2, 1): gain at index (9, 5) = frequencies (-6/15, -4/9), lands at (2 + 14, 1 + 8) = (1, 0).
    # (-2, -1): gain at index (5, 3) = (5/15, 3/9), lands at (-2 + 14, -1 + 8) = (-3, -2). Real part of the ifft:
    # y = 1/2 [g1 cos(2 pi h / 15) + g2 cos(2 pi (3h/15 + 2w/9))], in channel 0 + 2.
    sigma = 0.3
    rows = torch.arange(15, dtype=torch.float64)[:, None]
    cols = torch.arange(9, dtype=torch.float64)[None, :]
    x = torch.zeros(3, 15, 9)
    x[0] = torch.cos(2 * math.pi * (2 * rows / 15 + cols / 9)).float()
    g1 = math.exp(-((6 / 15) ** 2 + (4 / 9) ** 2) / (2 * sigma ** 2))
    g2 = math.exp(-((5 / 15) ** 2 + (3 / 9) ** 2) / (2 * sigma ** 2))
    expected = torch.zeros(3, 15, 9)
    expected[2] = (0.5 * (g1 * torch.cos(2 * math.pi * rows / 15).expand(15, 9)
                          + g2 * torch.cos(2 * math.pi * (3 * rows / 15 + 2 * cols / 9)))).float()
    assert torch.allclose(draft_filter(x, sigma), expected, atol=1e-6)


def test_draft_filter_is_a_mild_rescaling_of_smooth_images_and_filters_each_image_alone():
    blob = torch.exp(-((ROWS - 7.5) ** 2 + (COLS - 7.5) ** 2) / (2 * 3.0 ** 2))
    smooth = torch.stack([blob, 0.5 * blob, -blob])[None]
    out = ImageAdapter("draft", 0.9, 0.05)(smooth)
    assert (out - 0.9 * smooth).norm() / smooth.norm() < 1e-4
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    batched = draft_filter(x, 0.05)
    assert torch.allclose(batched, torch.stack([draft_filter(x[0], 0.05), draft_filter(x[1], 0.05)]), atol=1e-6)


def test_adapter_rejects_bad_settings():
    with pytest.raises(ValueError, match="TRAINER.APLE.FILTER"):
        ImageAdapter("highpass")
    with pytest.raises(ValueError, match="TRAINER.APLE.BETA"):
        ImageAdapter("lowpass", beta=1.5)
    with pytest.raises(ValueError, match="TRAINER.APLE.SIGMA"):
        ImageAdapter("draft", sigma=0.0)


# ---- the KD term -----------------------------------------------------------------------------------------------
def test_soft_target_cross_entropy_by_hand():
    # teacher (0, 0) -> p = (1/2, 1/2); student (0, 2 ln 3) / T=2 -> softmax (1/4, 3/4)
    student = torch.tensor([[0.0, 2 * math.log(3.0)]])
    teacher = torch.zeros(1, 2)
    expected = -4 * (0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_target_cross_entropy(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # equal to KL(p || q) + H(p): the same gradient as the KL
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5)
    kl = F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")
    (g_kd,) = torch.autograd.grad(soft_target_cross_entropy(s, t), s)
    (g_kl,) = torch.autograd.grad(kl, s)
    assert torch.allclose(g_kd, g_kl, atol=1e-6)


# ---- the trainer -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    make_color_dataset(root)
    return root


def _trainer(root, out, epochs=1, opts=(), seed=1, trainer="APLe"):
    node = "APLE" if trainer == "APLe" else "IVLP"
    cfg = tiny_cfg(root, str(out), trainer=trainer, seed=seed, opts=[
        "OPTIM.MAX_EPOCH", str(epochs), f"TRAINER.{node}.PREC", "fp32", f"TRAINER.{node}.PROMPT_DEPTH_TEXT",
        str(DEPTH), f"TRAINER.{node}.PROMPT_DEPTH_VISION", str(DEPTH), *opts])
    setup_logger(cfg.OUTPUT_DIR)
    set_random_seed(cfg.SEED)
    return cfg, build_trainer(cfg)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _teacher_logits(t, images):
    """Zero-shot CLIP on the RAW images with TestColors' template (the default "a photo of a {}.")."""
    with torch.no_grad():
        text = class_text_features(t.clip_model, t.classnames, ["a photo of a {}."])
        image = F.normalize(t.clip_model.encode_image(images).float(), dim=-1)
    return t.clip_model.logit_scale * image @ text.t()


def _student_logits(t, images, beta=0.9, sigma=0.05):
    """The student written out: learned text prompts, vision prompts on beta x + (1 - beta) lowpass_sigma(x)."""
    p = t.prompt_learner()
    text = t.clip_model.encode_text_from_embeddings(p.embeddings, p.eot_index, p.deep)
    v = t.vision_learner
    adapted = beta * images + (1 - beta) * gaussian_lowpass(images, sigma)
    image = t.clip_model.encode_image(adapted, v.ctx, [None, *v.deep])
    return t.clip_model.logit_scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()


def test_each_step_updates_only_its_prompts_with_its_loss(data_root, tmp_path):
    # a strong adapter (beta 0.5, sigma 0.1), so that a student on other images would give another loss
    cfg, t = _trainer(data_root, tmp_path / "run", opts=["OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "0.05",
                                                         "TRAINER.APLE.BETA", "0.5", "TRAINER.APLE.SIGMA", "0.1"])
    modules = {"text_prompt_learner": t.prompt_learner, "vision_prompt_learner": t.vision_learner}
    weights = {("text_prompt_learner",): 0.5, ("vision_prompt_learner",): 0.4,
               ("text_prompt_learner", "vision_prompt_learner"): 0.0}
    batch = next(iter(t.train_loader_x))
    images, labels = batch["img"], batch["label"]
    teacher = _teacher_logits(t, images)
    clip_before = _snapshot(t.clip_model)
    records = []
    original = t.backward_and_update

    def instrumented(loss, names=None):
        stepped = [modules[n] for n in names]
        params = [p for m in stepped for p in m.parameters()]
        logits = _student_logits(t, images, 0.5, 0.1)  # a full graph through both towers, with the current prompts
        expected = F.cross_entropy(logits, labels)
        w = weights[tuple(names)]
        if w:
            expected = expected - w * (F.softmax(teacher, -1) * F.log_softmax(logits, -1)).sum(-1).mean()
        expected_grads = torch.autograd.grad(expected, params)
        before = {n: _snapshot(m) for n, m in modules.items()}
        original(loss, names)
        after = {n: _snapshot(m) for n, m in modules.items()}
        records.append((tuple(names), loss.item(), expected.item(), [p.grad for p in params], expected_grads,
                        before, after))

    t.backward_and_update = instrumented
    teacher_calls = []
    original_teacher = t.teacher_logits
    t.teacher_logits = lambda x: teacher_calls.append(original_teacher(x)) or teacher_calls[-1]
    t.set_model_mode("train")
    summary = t.forward_backward(batch)

    assert [r[0] for r in records] == list(weights)
    assert len(teacher_calls) == 1  # once per batch, on the raw images
    assert torch.allclose(teacher_calls[0], teacher, atol=1e-5)
    for names, loss, expected, grads, expected_grads, before, after in records:
        assert loss == pytest.approx(expected, rel=1e-5)
        for g, e in zip(grads, expected_grads):
            assert (g - e).abs().max() <= 1e-4 * e.abs().max()
        for name in modules:
            changed = [not torch.equal(before[name][k], after[name][k]) for k in before[name]]
            assert all(changed) if name in names else not any(changed), (names, name)
    assert summary["text_loss"] == pytest.approx(records[0][1]) and summary["joint_loss"] == summary["loss"]
    assert summary["text_loss"] == pytest.approx(summary["text_ce"] + 0.5 * summary["text_kd"], rel=1e-5)
    assert summary["vision_loss"] == pytest.approx(summary["vision_ce"] + 0.4 * summary["vision_kd"], rel=1e-5)
    assert "joint_kd" not in summary
    # the teacher (the frozen backbone) is untouched and holds nothing trainable
    assert all(torch.equal(v, t.clip_model.state_dict()[k]) for k, v in clip_before.items())
    assert not any(p.requires_grad for p in t.clip_model.parameters())


def test_teacher_templates_are_the_drafts_by_default_and_coops_by_key(data_root, tmp_path):
    draft = {"OxfordPets": "a type of pet, a photo of a {}.", "OxfordFlowers": "a type of flower, a photo of a {}.",
             "FGVCAircraft": "a type of aircraft, a photo of a {}.", "DescribableTextures": "a texture of {}.",
             "Food101": "a type of food, a photo of {}.", "EuroSAT": "a centered satellite photo of {}.",
             "UCF101": "a photo of a person doing {}.", "Caltech101": "a photo of a {}.",
             "ImageNet": "a photo of a {}.", "TestColors": "a photo of a {}."}
    coop = {"OxfordPets": "a photo of a {}, a type of pet.", "DescribableTextures": "{} texture.",
            "Food101": "a photo of {}, a type of food.", "EuroSAT": "a centered satellite photo of {}."}
    for key, table in (("draft", draft), ("coop", coop)):
        _, t = _trainer(data_root, tmp_path / key, opts=["TRAINER.APLE.TEACHER_TEMPLATES", key])
        for name, template in table.items():
            t.cfg.defrost()
            t.cfg.DATASET.NAME = name
            assert t.teacher_template == template, (key, name)
    with pytest.raises(ValueError, match="TRAINER.APLE.TEACHER_TEMPLATES"):
        _trainer(data_root, tmp_path / "bad", opts=["TRAINER.APLE.TEACHER_TEMPLATES", "clip"])


def test_teacher_is_an_fp32_clip_and_a_separate_copy_under_half_precision(data_root, tmp_path):
    _, t = _trainer(data_root, tmp_path / "run")
    assert t.teacher_clip is t.clip_model  # fp32 weights already: the same frozen weights serve as the teacher
    loaded = copy.deepcopy(t.clip_model)  # a freshly loaded fp32 backbone
    reference = {k: v.clone() for k, v in loaded.state_dict().items()}
    t.precision.backbone_dtype = torch.float16  # as under PREC fp16 on a GPU
    student = t.prepare_backbone(loaded)
    teacher = t.build_teacher()
    assert teacher is not student
    assert all(p.dtype == torch.float16 for p in student.parameters())
    for k, v in teacher.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, reference[k]), k
    assert not any(p.requires_grad for p in teacher.parameters())
    assert "teacher" not in " ".join(t.get_model_names())  # never registered, so never saved


@pytest.mark.parametrize("opts, calls", [
    (["TRAINER.APLE.STAGES", "('joint',)"], [("text_prompt_learner", "vision_prompt_learner")]),
    (["TRAINER.APLE.KD_WEIGHT_TEXT", "0.0", "TRAINER.APLE.KD_WEIGHT_VISION", "0.0"],
     [("text_prompt_learner",), ("vision_prompt_learner",), ("text_prompt_learner", "vision_prompt_learner")]),
])
def test_ablations_without_knowledge_training_never_run_the_teacher(data_root, tmp_path, opts, calls):
    cfg, t = _trainer(data_root, tmp_path / "run", opts=opts)
    seen = []
    original = t.backward_and_update
    t.backward_and_update = lambda loss, names=None: seen.append(tuple(names)) or original(loss, names)
    t.teacher_logits = lambda x: pytest.fail("the teacher ran although no stage uses KD")
    t.set_model_mode("train")
    summary = t.forward_backward(next(iter(t.train_loader_x)))
    assert seen == calls
    assert not [k for k in summary if k.endswith("_kd")]


def test_base_to_new_run_saves_only_prompts_and_reloads_on_new_classes(data_root, tmp_path):
    cfg, t = _trainer(data_root, tmp_path / "base", opts=["DATASET.SUBSAMPLE_CLASSES", "base"])
    t.train()
    assert t.classnames == ["red", "green", "blue"]
    text_ckpt = load_checkpoint(os.path.join(cfg.OUTPUT_DIR, "text_prompt_learner", "model.pth.tar-1"))
    vision_ckpt = load_checkpoint(os.path.join(cfg.OUTPUT_DIR, "vision_prompt_learner", "model.pth.tar-1"))
    assert sorted(text_ckpt["state_dict"]) == ["ctx", "deep_text.0", "deep_text.1"]
    assert sorted(vision_ckpt["state_dict"]) == ["ctx", "deep.0", "deep.1"]
    for ckpt in (text_ckpt, vision_ckpt):  # both optimisers and schedules are saved
        assert len(ckpt["optimizer"]["state"]) == 3 and ckpt["scheduler"] is not None
    assert sorted(os.listdir(cfg.OUTPUT_DIR)) == ["checkpoints.json", "log.txt", "metrics.jsonl", "results.json",
                                                  "tensorboard", "text_prompt_learner", "vision_prompt_learner"]
    line = json.loads(open(os.path.join(cfg.OUTPUT_DIR, "metrics.jsonl")).readline())
    assert {"text_ce", "text_kd", "text_loss", "vision_ce", "vision_kd", "vision_loss", "joint_ce", "joint_loss",
            "loss", "acc"} <= set(line)
    assert line["lr"] == line["lr_text"] == line["lr_vision"] == pytest.approx(1e-5)

    # a fresh trainer restores both optimisers' state from the run directory (resume)
    _, resumed = _trainer(data_root, tmp_path / "base", opts=["DATASET.SUBSAMPLE_CLASSES", "base"])
    assert resumed.resume_model_if_exist(cfg.OUTPUT_DIR) == 1
    for name in ("text_prompt_learner", "vision_prompt_learner"):
        mine, theirs = resumed._optims[name].state_dict()["state"], t._optims[name].state_dict()["state"]
        assert all(torch.equal(mine[i]["momentum_buffer"], theirs[i]["momentum_buffer"]) for i in theirs)

    cfg2, t2 = _trainer(data_root, tmp_path / "new", opts=["DATASET.SUBSAMPLE_CLASSES", "new"])
    t2.eval_only = True
    t2.load_model(cfg.OUTPUT_DIR, epoch=1)
    assert t2.classnames == ["yellow", "purple", "orange"]
    for a, b in ((t2.prompt_learner, t.prompt_learner), (t2.vision_learner, t.vision_learner)):
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    t2.test()
    res = json.load(open(os.path.join(cfg2.OUTPUT_DIR, "results.json")))
    assert res["trainer"] == "APLe" and res["num_classes"] == 3 and res["metrics"]["total"] == 12
    # evaluation uses the adapted images: equal to the written-out student, different without the adapter
    images = next(iter(t2.test_loader))["img"]
    t2.before_test()
    with torch.no_grad():
        cached = t2.model_inference(images)
        assert torch.allclose(cached, _student_logits(t2, images), atol=1e-4)
        v = t2.vision_learner()
        raw = t2.clip_model.encode_image(images, v.prompts, v.deep)
    assert not torch.allclose(t2.image_features(images), raw, atol=1e-4)


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_text_lr_schedule_off_keeps_the_text_prompts_at_the_base_lr(data_root, tmp_path):
    cfg, t = _trainer(data_root, tmp_path / "run", epochs=3, opts=["TRAINER.APLE.TEXT_LR_SCHEDULE", "False"])
    lrs = []
    for epoch in range(3):
        lrs.append((t._optims["text_prompt_learner"].param_groups[0]["lr"], t.get_current_lr()))
        t._lr_stepped_this_epoch = False
        t.update_lr()
    assert [a for a, _ in lrs] == [0.002, 0.002, 0.002]  # the draft: no warm-up, no cosine
    assert [b for _, b in lrs] == pytest.approx([1e-5, 0.002, 0.002 * (1 + math.cos(math.pi / 3)) / 2])
    _, scheduled = _trainer(data_root, tmp_path / "run2")
    assert scheduled._optims["text_prompt_learner"].param_groups[0]["lr"] == pytest.approx(1e-5)


def test_initial_prompts_are_ivlps_for_the_same_seed(data_root, tmp_path):
    _, aple = _trainer(data_root, tmp_path / "aple", seed=0)
    _, ivlp = _trainer(data_root, tmp_path / "ivlp", seed=0, trainer="IVLP")
    learner = ivlp.prompt_learner
    assert torch.equal(aple.prompt_learner.ctx, learner.ctx)
    assert all(torch.equal(a, b) for a, b in zip(aple.prompt_learner.deep_text, learner.deep_text))
    assert torch.equal(aple.vision_learner.ctx, learner.vision.ctx)
    assert all(torch.equal(a, b) for a, b in zip(aple.vision_learner.deep, learner.vision.deep))


@pytest.mark.parametrize("key, value, message", [
    ("TRAINER.APLE.STAGES", "('text', 'distill')", "TRAINER.APLE.STAGES"),
    ("TRAINER.APLE.STAGES", "()", "TRAINER.APLE.STAGES"),
    ("TRAINER.APLE.FILTER", "gauss", "TRAINER.APLE.FILTER"),
    ("TRAINER.APLE.KD_WEIGHT_VISION", "-1.0", "TRAINER.APLE.KD_WEIGHT_VISION"),
    ("TRAINER.APLE.PROMPT_DEPTH_VISION", "0", "TRAINER.APLE.PROMPT_DEPTH_VISION"),
    ("TRAINER.APLE.PROMPT_DEPTH_TEXT", "7", "TRAINER.APLE.PROMPT_DEPTH_TEXT is 7; it must be between 1 and 3"),
])
def test_bad_settings_fail_with_one_message(data_root, tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _trainer(data_root, tmp_path / "run", opts=[key, value])


def test_configs_merge():
    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "trainers", "APLe", "*.yaml")))
    assert len(files) >= 3
    for path in files:
        cfg = build_cfg("", path, trainer="APLe")
        assert set(cfg.TRAINER.APLE.STAGES) <= {"text", "vision", "joint"}
        assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE in (4, 16)
    toy = build_cfg("", os.path.join(os.path.dirname(files[0]), "toy.yaml"), trainer="APLe")
    assert toy.MODEL.BACKBONE.NAME == "toyclip" and toy.TRAINER.APLE.PREC == "fp32"
