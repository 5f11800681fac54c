"""RESTORE: the FSC loss, the surgery block and its one-time ratio update, checkpoints and resume, both SHIFT
measures, the released configs, and the feature-shift analysis command (tools.feature_shift)."""
import glob
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F
import yaml

import train

from engine import build_trainer
from engine.config import build_cfg
from engine.config.strict import merge_from_file
from engine.utils import load_checkpoint, set_random_seed, setup_logger
from tests.helpers import TINY_OPTS, TINY_VIT, make_color_dataset, tiny_cfg
from tools import feature_shift as tool
from trainers.feature_shift import (GramReference, fsc_loss, gram_norm, gram_norms, relative_feature_shift,
                                    relative_gram_shift, text_content_mask)
from trainers.prompt_types import TextPrompts, VisionPrompts
from trainers.restore_surgery import FeedForwardAdapter, SurgeryBlock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs", "trainers", "RESTORE")
EPOCHS = 3  # the ratio update comes after epoch index 3 // 3 = 1


def restore_opts(epochs=EPOCHS, shift="gram", classes="base", opts=()):
    """A tiny RESTORE run on TestColors (6 shots: 2 batches of 8 per epoch): deep prompts at blocks 1 and 2 of the
    3-block backbone, no warm-up."""
    return ["DATASET.NUM_SHOTS", "6", "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.LR", "0.005", "OPTIM.WARMUP_EPOCH", "0",
            "TRAINER.RESTORE.PROMPT_DEPTH", "3", "TRAINER.RESTORE.PREC", "fp32", "TRAINER.RESTORE.SHIFT", shift,
            "DATASET.SUBSAMPLE_CLASSES", classes, *opts]


def restore_cfg(root, out, **kwargs):
    return tiny_cfg(str(root), str(out), trainer="RESTORE", opts=restore_opts(**kwargs))


def restore_argv(root, out, *flags, **kwargs):
    """The same run as ``python train.py`` arguments."""
    return ["--root", str(root), "--output-dir", str(out), "--seed", "1", "--trainer", "RESTORE", "--backbone",
            TINY_VIT, *flags, "DATASET.NAME", "TestColors", *TINY_OPTS, *restore_opts(**kwargs)]


def make(cfg):
    setup_logger(cfg.OUTPUT_DIR)
    set_random_seed(cfg.SEED)  # the tiny backbone's random weights come from this seed too
    return build_trainer(cfg)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("restore_data")
    make_color_dataset(str(root))
    return root


@pytest.fixture(scope="module")
def gram_run(data_root, tmp_path_factory):
    """A finished 3-epoch RESTORE run (SHIFT gram) on the base classes: (cfg, trainer)."""
    cfg = restore_cfg(data_root, tmp_path_factory.mktemp("restore_runs") / "gram")
    trainer = make(cfg)
    trainer.train()
    return cfg, trainer


def _metrics(cfg):
    return [json.loads(line) for line in open(os.path.join(cfg.OUTPUT_DIR, "metrics.jsonl"))]


# ---- the measures and the loss --------------------------------------------------------------------------------
def test_gram_norm_equals_hand_computation():
    p = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])  # P P^T = [[5, 2], [2, 2]]
    assert gram_norm(p).item() == pytest.approx(math.sqrt(25 + 4 + 4 + 4))
    assert gram_norm(p).item() == pytest.approx(torch.linalg.matrix_norm(p.t() @ p).item())  # ||P^T P||_F


def test_fsc_loss_values_and_gradient_directions():
    torch.manual_seed(0)
    t0, v0 = [torch.randn(2, 6), torch.randn(2, 6)], [torch.randn(2, 9), torch.randn(2, 9)]
    ref = GramReference(2, 2)
    ref.capture(t0, v0)
    assert torch.allclose(ref.text, torch.stack([gram_norm(p) for p in t0])) and bool(ref.captured)
    # block 1: text doubled (s = 4), vision unchanged (s = 1); block 2: both tripled (s = 9 each)
    t = [(2 * t0[0]).requires_grad_(), (3 * t0[1]).requires_grad_()]
    v = [v0[0].clone().requires_grad_(), (3 * v0[1]).requires_grad_()]
    s_t, s_v = relative_gram_shift(t, ref.text), relative_gram_shift(v, ref.vision)
    assert s_t.tolist() == pytest.approx([4.0, 9.0]) and s_v.tolist() == pytest.approx([1.0, 9.0])
    loss = fsc_loss(s_t, s_v)
    assert loss.item() == pytest.approx((4 - 1) ** 2)  # a plain sum over blocks, not a mean
    loss.backward()
    # s is homogeneous of degree 2 in P, so <dL/dP, P> = dL/ds * 2 s: 6 * 8 for text, -6 * 2 for vision;
    # gradient descent shrinks the text prompt and grows the vision prompt (both terms carry gradients)
    assert (t[0].grad * t[0]).sum().item() == pytest.approx(48.0, rel=1e-4)
    assert (v[0].grad * v[0]).sum().item() == pytest.approx(-12.0, rel=1e-4)
    assert t[1].grad.abs().max().item() < 1e-4 and v[1].grad.abs().max().item() < 1e-4


def test_gram_reference_refuses_zero_prompts():
    with pytest.raises(ValueError, match="SHIFT feature"):
        GramReference(1, 1).capture([torch.zeros(2, 4)], [torch.ones(2, 4)])


def test_relative_feature_shift_equals_hand_computation():
    reference = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # [1, 2 tokens, d 2]; ||H0||^2 = 1 + 4
    hidden = torch.tensor([[[1.0, 3.0], [0.0, 2.0], [9.0, 9.0]]], requires_grad=True)  # + an appended prompt token
    assert relative_feature_shift(hidden, reference).item() == pytest.approx(3 / math.sqrt(5))
    assert relative_feature_shift(hidden, reference, torch.tensor([[True, False]])).item() == pytest.approx(3.0)
    same = reference.clone().requires_grad_()
    zero = relative_feature_shift(same, reference)
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(same.grad, torch.zeros_like(same))  # exact 0, no NaN gradient


def test_text_content_mask_leaves_out_learned_slots_and_padding():
    mask = text_content_mask(torch.tensor([4, 6]), n_slots=2, length=8)
    assert mask.tolist() == [[True, False, False, True, True, False, False, False],
                             [True, False, False, True, True, True, True, False]]


# ---- the surgery block --------------------------------------------------------------------------------------
def test_surgery_blend_is_the_released_calibrator():
    torch.manual_seed(0)
    block = SurgeryBlock(8, text_ratio=0.3, vision_ratio=0.7)
    f = torch.randn(4, 8)
    for adapter, r, out in ((block.text, 0.3, block.calibrate_text(f)), (block.vision, 0.7, block.calibrate_vision(f))):
        h = adapter.fc1(F.layer_norm(f, (8,), adapter.norm.weight, adapter.norm.bias))
        g = f + adapter.fc2(h * torch.sigmoid(1.702 * h))  # Feature_Calibrator: f + FFN(LN(f)), QuickGELU
        assert torch.allclose(out, r * g + (1 - r) * f, atol=1e-6)
    assert sum(p.numel() for p in FeedForwardAdapter(512).parameters()) == 2_100_736  # docs/RESTORE.md


def test_ratio_update_applies_once():
    block = SurgeryBlock(4, text_ratio=0.1, vision_ratio=0.05)
    assert block.update_ratios(2.0, 4.0, 0.02, 0.005)
    assert block.text_ratio.item() == pytest.approx(0.1 + 0.04) and block.vision_ratio.item() == pytest.approx(0.07)
    assert not block.update_ratios(9.0, 9.0, 0.02, 0.005)
    assert block.text_ratio.item() == pytest.approx(0.14) and bool(block.ratios_updated)


# ---- the trainer ----------------------------------------------------------------------------------------------
def test_fsc_is_zero_at_the_first_step_then_positive(data_root, tmp_path):
    t = make(restore_cfg(data_root, tmp_path / "run", epochs=1))
    t.set_model_mode("train")
    images, labels = t.parse_batch_train(next(iter(t.train_loader_x)))
    deep_t = [p.detach().clone() for p in t.prompt_learner.compound_prompts_text]
    loss, _, terms = t.compute_loss(images, labels)
    assert terms["fsc"].item() == 0.0 and loss.item() == terms["ce"].item()
    assert torch.allclose(t.fsc_reference.text, gram_norms(deep_t))
    t.backward_and_update(loss)
    loss, _, terms = t.compute_loss(images, labels)
    assert terms["fsc"].item() > 0
    assert torch.allclose(t.fsc_reference.text, gram_norms(deep_t))  # captured once, at the first step
    assert t.get_model_names() == ["MultiModalPromptLearner", "surgery", "fsc_reference"]


def test_ratio_update_happens_once_after_epoch_e_div_3(gram_run):
    cfg, t = gram_run
    lines = _metrics(cfg)
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[0]["text_ratio"] == pytest.approx(0.1) and lines[0]["vision_ratio"] == pytest.approx(0.1)
    # after epoch index 1 (= 3 // 3): r += coef * mean Gram norm of the prompts at that moment
    assert lines[1]["text_ratio"] == pytest.approx(0.1 + 0.02 * lines[1]["text_gram"], rel=1e-6)
    assert lines[1]["vision_ratio"] == pytest.approx(0.1 + 0.005 * lines[1]["vision_gram"], rel=1e-6)
    assert lines[1]["text_ratio"] > 0.1 and lines[1]["vision_ratio"] > 0.1
    assert (lines[2]["text_ratio"], lines[2]["vision_ratio"]) == (lines[1]["text_ratio"], lines[1]["vision_ratio"])
    assert open(os.path.join(cfg.OUTPUT_DIR, "log.txt")).read().count("Surgery ratios updated") == 1
    assert lines[2]["fsc"] > 0
    max_epoch = t.max_epoch
    try:
        assert [(setattr(t, "max_epoch", e), t.calibration_epoch)[1] for e in (10, 2, 1)] == [3, 0, 0]
    finally:
        t.max_epoch = max_epoch


def test_adapters_ratios_and_reference_are_saved_and_used_on_new_classes(gram_run, data_root, tmp_path):
    cfg, t = gram_run
    ckpt = load_checkpoint(os.path.join(cfg.OUTPUT_DIR, "surgery", f"model.pth.tar-{EPOCHS}"))
    assert {"text_ratio", "vision_ratio", "ratios_updated", "text.fc1.weight", "vision.fc2.bias"} <= set(
        ckpt["state_dict"])
    assert ckpt["optimizer"] is not None
    ref = load_checkpoint(os.path.join(cfg.OUTPUT_DIR, "fsc_reference", f"model.pth.tar-{EPOCHS}"))
    assert set(ref["state_dict"]) == {"text", "vision", "captured"}

    new = make(restore_cfg(data_root, tmp_path / "new", classes="new"))
    new.load_model(cfg.OUTPUT_DIR, epoch=EPOCHS)
    for a, b in ((new.surgery, t.surgery), (new.fsc_reference, t.fsc_reference)):
        for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), k
    assert new.classnames == ["yellow", "purple", "orange"]
    acc = new.test()
    assert os.path.isfile(os.path.join(new.output_dir, "results.json")) and 0 <= acc <= 100
    # evaluation uses the adapters with the saved ratios
    images = next(iter(new.test_loader))["img"]
    s = new.surgery
    with torch.no_grad():
        v = new.prompt_learner.vision_prompts()
        f = new.clip_model.encode_image(images, v.prompts, v.deep)
        p = new.prompt_learner()
        g = new.clip_model.encode_text_from_embeddings(p.embeddings, p.eot_index, p.deep)
        f = f + ckpt["state_dict"]["vision_ratio"] * s.vision(f)
        g = g + ckpt["state_dict"]["text_ratio"] * s.text(g)
        manual = new.logit_scale * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).t()
        new.before_test()
        assert torch.allclose(new.model_inference(images), manual, atol=1e-4)


def test_killed_run_resumes_with_the_saved_ratios_and_reference(gram_run, data_root, tmp_path):
    cfg_full, full = gram_run
    cfg = restore_cfg(data_root, tmp_path / "killed")
    t = make(cfg)
    original = t.forward_backward

    def dies_in_the_last_epoch(batch):
        if t.epoch == EPOCHS - 1 and t.batch_idx == 1:
            raise KeyboardInterrupt
        return original(batch)

    t.forward_backward = dies_in_the_last_epoch
    with pytest.raises(KeyboardInterrupt):
        t.train()
    resumed = make(cfg)
    set_random_seed(123)  # another RNG state: everything that matters must come from the checkpoint
    resumed.train()
    assert resumed.start_epoch == EPOCHS - 1
    assert torch.equal(resumed.surgery.text_ratio, full.surgery.text_ratio)
    assert torch.equal(resumed.surgery.vision_ratio, full.surgery.vision_ratio)
    assert torch.equal(resumed.fsc_reference.text, full.fsc_reference.text)
    deep = list(resumed.prompt_learner.compound_prompts_text)
    assert not torch.allclose(resumed.fsc_reference.text, gram_norms(deep))  # the first-step norms, not recaptured
    for a, b in zip(resumed.prompt_learner.parameters(), full.prompt_learner.parameters()):
        assert torch.equal(a, b)
    results = [json.load(open(os.path.join(c.OUTPUT_DIR, "results.json")))["metrics"] for c in (cfg, cfg_full)]
    assert results[0] == results[1]
    assert _metrics(cfg) == [dict(x, time_s=y["time_s"]) for x, y in zip(_metrics(cfg_full), _metrics(cfg))]


def test_feature_shift_is_zero_without_prompts_and_trains(data_root, tmp_path):
    """"Zero prompts" = the prompt-free input itself: the text is the frozen token embeddings of the learner's own
    prompt tokens ("a photo of a {class}.") with no deep prompts, and no vision tokens are appended."""
    t = make(restore_cfg(data_root, tmp_path / "feature", epochs=1, shift="feature"))
    learner, bb = t.prompt_learner, t.clip_model
    images = next(iter(t.test_loader))["img"]
    with torch.no_grad():
        zero_text = TextPrompts(bb.token_embedding(learner.tokenized_prompts), learner.eot_index, None)
        s_t, s_v = t.feature_shifts(images, zero_text, VisionPrompts())
        assert torch.equal(s_t, torch.zeros(2)) and torch.equal(s_v, torch.zeros(2))
        s_t, s_v = t.feature_shifts(images)
        assert (s_t > 0).all() and (s_v > 0).all()
        # text, block 1, by hand: SOT and positions 3..EOT ("of a <class> ." EOT), the 2 learned slots left out
        p = learner()
        _, hidden = bb.encode_text_from_embeddings(p.embeddings, p.eot_index, p.deep, return_hidden=True)
        _, ref = bb.encode_text_from_embeddings(zero_text.embeddings, p.eot_index, return_hidden=True)
        keep = [[0] + list(range(3, int(e) + 1)) for e in p.eot_index]
        num = sum((hidden[1][c, k] - ref[1][c, k]).pow(2).sum() for c, k in enumerate(keep))
        den = sum(ref[1][c, k].pow(2).sum() for c, k in enumerate(keep))
        assert s_t[0].item() == pytest.approx(math.sqrt(num / den), rel=1e-5)
    out = tmp_path / "feature_cli"  # base-to-new through the command line
    assert train.main(restore_argv(data_root, out, epochs=1, shift="feature")) == 0
    assert json.loads(open(out / "metrics.jsonl").readline())["fsc"] > 0
    new = tmp_path / "feature_new"
    flags = ("--eval-only", "--model-dir", str(out), "--load-epoch", "1")
    assert train.main(restore_argv(data_root, new, *flags, epochs=1, shift="feature", classes="new")) == 0
    res = json.load(open(new / "results.json"))
    assert res["trainer"] == "RESTORE" and res["subsample_classes"] == "new" and res["num_classes"] == 3


def test_ivlp_base_builds_independent_prompts(data_root, tmp_path):
    t = make(restore_cfg(data_root, tmp_path / "ivlp", epochs=1, opts=["TRAINER.RESTORE.BASE", "ivlp"]))
    assert type(t.prompt_learner).__name__ == "IVLPPromptLearner"
    images, labels = t.parse_batch_train(next(iter(t.train_loader_x)))
    loss, _, terms = t.compute_loss(images, labels)
    assert terms["fsc"].item() == 0.0 and t.fsc_reference.vision.numel() == 2


def test_bad_settings_are_named(data_root, tmp_path):
    with pytest.raises(ValueError, match='TRAINER.RESTORE.SHIFT is "features"'):
        make(restore_cfg(data_root, tmp_path / "bad", shift="features"))
    with pytest.raises(ValueError, match="TRAINER.RESTORE.PROMPT_DEPTH is 7"):
        make(restore_cfg(data_root, tmp_path / "bad", opts=["TRAINER.RESTORE.PROMPT_DEPTH", "7"]))


# ---- configs --------------------------------------------------------------------------------------------------
RELEASED_RATIOS = {  # run_maple_fsa.sh: VIS_CALIB_R TEXT_CALIB_R FS_LOSS_R (docs/RESTORE.md)
    "imagenet": (0.05, 0.05, 1), "caltech101": (0.1, 0.1, 1), "oxford_pets": (0.01, 0.1, 1),
    "stanford_cars": (0.1, 0.1, 1), "oxford_flowers": (0.1, 0.1, 1), "food101": (0.1, 0.1, 1),
    "fgvc_aircraft": (0.1, 0.1, 1), "sun397": (0.05, 0.05, 1), "dtd": (0.15, 0.1, 0.5), "eurosat": (0.01, 0.1, 1),
    "ucf101": (0.05, 0.05, 1),
}


def test_released_configs_and_per_dataset_ratios():
    for path in glob.glob(os.path.join(CONFIGS, "*.yaml")):
        build_cfg("", path, trainer="RESTORE")  # every config merges
    b2n = build_cfg("", os.path.join(CONFIGS, "vit_b16_c2_ep10_batch4_2ctx.yaml"), trainer="RESTORE")
    n = b2n.TRAINER.RESTORE
    assert (b2n.OPTIM.MAX_EPOCH, b2n.OPTIM.LR, b2n.DATALOADER.TRAIN_X.BATCH_SIZE) == (10, 0.0035, 4)
    assert (n.N_CTX, n.PROMPT_DEPTH, n.CTX_INIT, n.SHIFT, n.BASE) == (2, 9, "a photo of a", "gram", "maple")
    xd = build_cfg("", os.path.join(CONFIGS, "vit_b16_c2_ep2_batch4_2ctx_cross_datasets.yaml"), trainer="RESTORE")
    assert xd.OPTIM.MAX_EPOCH == 2
    stems = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CONFIGS, "datasets", "*.yaml")))
    assert stems == sorted(RELEASED_RATIOS)
    for stem, (vis, text, lam) in RELEASED_RATIOS.items():
        cfg = build_cfg(os.path.join(REPO, "configs", "datasets", f"{stem}.yaml"),
                        os.path.join(CONFIGS, "vit_b16_c2_ep10_batch4_2ctx.yaml"), trainer="RESTORE", freeze=False)
        merge_from_file(cfg, os.path.join(CONFIGS, "datasets", f"{stem}.yaml"))
        r = cfg.TRAINER.RESTORE
        assert (r.VIS_CALIB_R, r.TEXT_CALIB_R, r.FS_LOSS_R) == (vis, text, lam), stem
        assert yaml.safe_load(open(os.path.join(CONFIGS, "datasets", f"{stem}.yaml"))).keys() == {"TRAINER"}


# ---- the analysis command -------------------------------------------------------------------------------------
def test_feature_shift_command_on_trained_runs(gram_run, data_root, tmp_path):
    cfg, t = gram_run
    coop = str(tmp_path / "coop")
    argv = ["--root", str(data_root), "--output-dir", coop, "--seed", "1", "--trainer", "CoOp", "--backbone",
            TINY_VIT, "DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "1", "TRAINER.COOP.N_CTX", "2",
            "DATASET.SUBSAMPLE_CLASSES", "base", *TINY_OPTS]
    assert train.main(argv) == 0
    with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:  # what train.py writes
        f.write(cfg.dump())
    out = tmp_path / "analysis"
    assert tool.main(["--model-dir", cfg.OUTPUT_DIR, coop, "--out", str(out), "--tsne", "--tsne-images", "12"]) == 0

    rec = json.load(open(out / "0_RESTORE_TestColors_base_seed1" / "feature_shift.json"))
    trained = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))["metrics"]
    assert rec["accuracy"] == pytest.approx(trained["accuracy"]) and rec["num_images"] == trained["total"]
    assert len(rec["text"]["feature_shift"]) == len(rec["vision"]["feature_shift"]) == 3
    assert all(x > 0 for x in rec["text"]["feature_shift"] + rec["vision"]["feature_shift"])
    s_t = [x.item() for x in gram_norms(list(t.prompt_learner.compound_prompts_text)) / t.fsc_reference.text]
    assert rec["text"]["relative_gram_shift"] == pytest.approx([None, *s_t])
    assert rec["text"]["deep_prompt_blocks"] == [1, 2]
    d = [a - b for a, b in zip(rec["text"]["feature_shift"], rec["vision"]["feature_shift"])]
    assert rec["discrepancy"]["sum_squared"] == pytest.approx(sum(x * x for x in d))
    with torch.no_grad():  # the image-tower shift over the whole split (one test batch here) = the trainer's measure
        images = torch.cat([b["img"] for b in t.test_loader])
        v = t.vision_prompts()
        _, hidden = t.clip_model.encode_image(images, v.prompts, v.deep, return_hidden=True)
        _, ref = t.clip_model.encode_image(images, return_hidden=True)
    assert rec["vision"]["feature_shift"][2] == pytest.approx(relative_feature_shift(hidden[2], ref[2]).item(), 1e-5)

    coop_rec = json.load(open(out / "1_CoOp_TestColors_base_seed1" / "feature_shift.json"))
    assert coop_rec["vision"]["prompted"] is False and coop_rec["vision"]["feature_shift"] == [0.0, 0.0, 0.0]
    assert coop_rec["text"]["prompted"] is True and coop_rec["text"]["relative_gram_shift"] == [None] * 3
    for png in ("0_RESTORE_TestColors_base_seed1/feature_shift.png", "0_RESTORE_TestColors_base_seed1/tsne.png",
                "feature_shift.png", "discrepancy_vs_accuracy.png"):
        assert (out / png).stat().st_size > 0, png


def test_feature_shift_command_names_a_missing_config(tmp_path, capsys):
    assert tool.main(["--model-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert str(tmp_path / "config.yaml") in capsys.readouterr().err
