"""Nemesis: PUN/PAN against hand computations, pre-inference flags, omega(t), logging, both bases, the corruption
study and the Low-Norm plots (tiny random backbone, generated TestColors data)."""
import glob
import json
import math
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml

from engine import build_trainer
from engine.utils import load_checkpoint, set_random_seed, setup_logger
from tests.helpers import tiny_cfg
from experiments import corruption, nemesis_plots
from trainers.nemesis_loss import (omega, pan_flags, pan_loss, position_norms, pun_loss, rescaled_variants,
                                   sample_positions, weighted_norm)
from trainers.nemesis_pan import BatchedTextScorer, SwappedContextScorer, context_value

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# P [M=3, d=2]: L2 norms 5, 0, 1; L1 norms 7, 0, 1; max norms 4, 0, 1.
P = torch.tensor([[3.0, -4.0], [0.0, 0.0], [1.0, 0.0]])


# ---- the terms ---------------------------------------------------------------------------------------------------
def test_pun_is_a_times_the_mean_unsquared_norm():
    assert float(pun_loss(P, 2.0, "two")) == pytest.approx(2.0 * (5 + 0 + 1) / 3)
    assert float(pun_loss(P, 1.0, "one")) == pytest.approx((7 + 0 + 1) / 3)
    assert float(pun_loss(P, 3.0, "inf")) == pytest.approx(3.0 * (4 + 0 + 1) / 3)
    # class-specific context [C=2, M, d]: summed over classes, divided by the number of positions (released code)
    csc = torch.stack([P, 2 * P])
    assert float(pun_loss(csc, 1.0)) == pytest.approx((6 + 12) / 3)
    with pytest.raises(ValueError, match="NORM"):
        position_norms(P, "three")


def test_pun_gradient_is_a_over_m_times_the_unit_vector():
    ctx = P.clone().requires_grad_(True)
    pun_loss(ctx, 3.0).backward()
    # d/dP_0 of 3 * (||P_0|| + ||P_1|| + ||P_2||) / 3 = P_0 / ||P_0||
    assert torch.allclose(ctx.grad[0], torch.tensor([0.6, -0.8]))
    assert torch.allclose(ctx.grad[2], torch.tensor([1.0, 0.0]))


def test_pan_is_the_scaled_mean_over_flagged_positions_and_zero_without_flags():
    assert float(pan_loss(P, torch.tensor([True, False, True]), 4.0)) == pytest.approx(4.0 * (5 + 1) / 2)
    assert float(pan_loss(P, torch.tensor([True, False, False]), 4.0)) == pytest.approx(4.0 * 5)
    assert float(pan_loss(P, torch.tensor([False, False, False]), 4.0)) == 0.0
    # L_N with mixed weights: sum_j alpha_j ||P_j|| / #{alpha_j != 0}
    assert float(weighted_norm(P, torch.tensor([1.0, 0.0, 3.0]))) == pytest.approx((5 + 3) / 2)


def test_pan_flags_only_strict_improvements():
    positions = torch.tensor([2, 0, 3])
    correct = torch.tensor([5, 6, 5, 4])  # original 5; pos 2 -> 6 (better), pos 0 -> 5 (tie), pos 3 -> 4 (worse)
    assert pan_flags(correct, positions, 4).tolist() == [False, False, True, False]


def test_rescaled_variants_and_positions():
    v = rescaled_variants(P, torch.tensor([2, 0]), 0.5)
    assert v.shape == (3, 3, 2)
    assert torch.equal(v[0], P)
    assert torch.equal(v[1], torch.tensor([[3.0, -4.0], [0.0, 0.0], [0.5, 0.0]]))
    assert torch.equal(v[2], torch.tensor([[1.5, -2.0], [0.0, 0.0], [1.0, 0.0]]))
    csc = rescaled_variants(torch.stack([P, P]), torch.tensor([0]), 0.0)  # every class's position 0
    assert csc.shape == (2, 2, 3, 2) and float(csc[1, :, 0].abs().sum()) == 0.0
    drawn = sample_positions(16, 5, torch.Generator().manual_seed(0))
    assert len(set(drawn.tolist())) == 5 and all(0 <= j < 16 for j in drawn.tolist())
    assert torch.equal(drawn, sample_positions(16, 5, torch.Generator().manual_seed(0)))


def test_omega_schedule_values():
    def by_hand(t, T, k=0.2):
        return 1 - 1 / (1 + math.exp(-k * (t - T / 2)))

    assert omega(0, 50) == pytest.approx(0.9933071, abs=1e-7)  # e^5 / (1 + e^5)
    assert omega(0, 50) == pytest.approx(by_hand(0, 50))
    assert omega(25, 50) == 0.5
    assert omega(49, 50) == pytest.approx(0.0081626, abs=1e-7)  # 1 / (1 + e^4.8)
    assert omega(100, 200) == 0.5 and omega(90, 200) == pytest.approx(by_hand(90, 200))
    assert omega(3, 10, k=1.0) == pytest.approx(by_hand(3, 10, 1.0))
    assert omega(0, 20000) == 1.0 and omega(20000, 20000) == 0.0  # no overflow
    assert omega(7, 50, "constant") == 1.0
    with pytest.raises(ValueError, match="SCHEDULE"):
        omega(0, 10, "cosine")


# ---- pre-inference on a constructed batch -------------------------------------------------------------------------
class _SumLearner:
    """A 2-class 'learner' whose class text feature is e_c + sum_j P_j (prefix zero, suffix e_c)."""

    def __init__(self, ctx):
        self.ctx = torch.nn.Parameter(ctx)
        self.n_cls = 2
        self.eot_index = torch.tensor([4, 4])

    def assemble(self, ctx):  # [C, M, d] -> [C, 1 + M + 1, d]
        return torch.cat([torch.zeros(2, 1, 2), ctx, torch.eye(2).unsqueeze(1)], dim=1)


def _constructed_trainer():
    # Images are their own features. P_0 pulls towards class 1, P_1 towards class 0, P_2 is small.
    learner = _SumLearner(torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.0, 0.05]]))
    images = torch.tensor([[1.0, 0.3], [1.0, 0.3], [1.0, 1.2], [1.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    clip_model = SimpleNamespace(encode_text_from_embeddings=lambda x, eot: x.sum(dim=1))

    def logits(imgs):
        txt = torch.eye(2) + learner.ctx.sum(dim=0)
        return F.normalize(imgs, dim=-1) @ F.normalize(txt, dim=-1).t()

    trainer = SimpleNamespace(prompt_learner=learner, clip_model=clip_model, image_features=lambda x: x,
                              logits=logits)
    return trainer, images, labels


def _hits_by_hand(ctx, images, labels):
    """Top-1 hits with plain loops: cosine of each image with e_c + sum_j P_j."""
    s = [sum(float(ctx[j][i]) for j in range(len(ctx))) for i in range(2)]
    texts = [[1 + s[0], s[1]], [s[0], 1 + s[1]]]
    hits = 0
    for x, y in zip(images.tolist(), labels.tolist()):
        cos = [(x[0] * t[0] + x[1] * t[1]) / math.hypot(*x) / math.hypot(*t) for t in texts]
        hits += int(cos.index(max(cos)) == y)
    return hits


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_pre_inference_flags_exactly_the_positions_whose_rescaling_helps(chunk):
    trainer, images, labels = _constructed_trainer()
    positions = torch.tensor([0, 1, 2])
    variants = rescaled_variants(trainer.prompt_learner.ctx, positions, 0.5)
    expected = [_hits_by_hand(v, images, labels) for v in variants]
    assert expected == [3, 4, 2, 3]  # halving P_0 helps, P_1 hurts, P_2 changes nothing
    batched = BatchedTextScorer(trainer, chunk).correct(images, labels, variants)
    swapped = SwappedContextScorer(trainer).correct(images, labels, variants)
    assert batched.tolist() == expected and swapped.tolist() == expected
    assert pan_flags(batched, positions, 3).tolist() == [True, False, False]
    assert torch.equal(trainer.prompt_learner.ctx.data, variants[0])  # the swap restored the context


# ---- runs ------------------------------------------------------------------------------------------------------
def _trainer(root, name, trainer="Nemesis", epochs=1, opts=(), seed=1):
    out = str(root / name)
    cfg = tiny_cfg(str(root / "data"), out, trainer=trainer, seed=seed,
                   opts=["OPTIM.MAX_EPOCH", str(epochs), "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.PREC", "fp32",
                         "OPTIM.LR", "0.05", "OPTIM.WARMUP_EPOCH", "0", "DATASET.NUM_SHOTS", "4", *opts])
    setup_logger(out)
    set_random_seed(cfg.SEED)
    t = build_trainer(cfg)
    with open(os.path.join(out, "config.yaml"), "w") as f:  # as train.py does
        f.write(cfg.dump())
    return cfg, t


def _metrics(cfg):
    return [json.loads(x) for x in open(os.path.join(cfg.OUTPUT_DIR, "metrics.jsonl"))]


@pytest.fixture(scope="module")
def coop_run(tmp_path_factory):
    """A trained 1-epoch CoOp run: (cfg, trainer, ctx after training, final accuracy)."""
    cfg, t = _trainer(tmp_path_factory.mktemp("coop"), "coop", trainer="CoOp")
    t.train()
    return cfg, t, t.prompt_learner.ctx.detach().clone(), t.last_results["accuracy"]


PAN_OPTS = ["TRAINER.NEMESIS.BETA", "0.5", "TRAINER.NEMESIS.NP", "2", "TRAINER.NEMESIS.EVAL_EACH_EPOCH", "True"]


@pytest.fixture(scope="module")
def nemesis_run(tmp_path_factory):
    """A trained 2-epoch Nemesis (PUN + PAN) run over CoOp that logs its test accuracy every epoch."""
    cfg, t = _trainer(tmp_path_factory.mktemp("nemesis"), "run", epochs=2, opts=PAN_OPTS)
    t.train()
    return cfg, t


def test_loss_is_ce_plus_omega_times_the_mixed_penalty(tmp_path):
    opts = ["TRAINER.NEMESIS.A", "2.0", "TRAINER.NEMESIS.PAN_A", "3.0", "TRAINER.NEMESIS.BETA", "0.25",
            "TRAINER.NEMESIS.NP", "4", "TRAINER.NEMESIS.CW", "0.0", "OPTIM.MAX_EPOCH", "4"]
    cfg, t = _trainer(tmp_path, "loss", opts=opts)
    t.epoch, t.max_epoch = 1, 4
    batch = next(iter(t.train_loader_x))
    images, labels = t.parse_batch_train(batch)
    rng = t.position_rng.get_state()
    loss, logits, terms = t.compute_loss(images, labels)
    t.position_rng.set_state(rng)
    flagged = t.flag_positions(images, labels)  # the same draw
    ctx = t.prompt_learner.ctx.detach()
    norms = ctx.norm(dim=-1)
    pun = 2.0 * norms.mean()
    pan = 3.0 * norms[flagged].mean() if flagged.any() else torch.tensor(0.0)
    w = 1 - 1 / (1 + math.exp(-0.2 * (1 - 2)))
    assert float(terms["pun"]) == pytest.approx(float(pun), rel=1e-5)
    assert float(terms["pan"]) == pytest.approx(float(pan), rel=1e-5)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, labels) + w * (0.25 * pun + 0.75 * pan)),
                                        rel=1e-5)


def test_nemesis_run_logs_norms_and_flags_and_saves_its_generator(nemesis_run, tmp_path):
    cfg, t = nemesis_run
    assert type(t).__name__ == "NemesisCoOp" and t.CFG_NODE == "COOP"
    assert isinstance(t.pan_scorer, BatchedTextScorer)
    lines = _metrics(cfg)
    assert [x["epoch"] for x in lines] == [1, 2]
    ckpt = load_checkpoint(os.path.join(cfg.OUTPUT_DIR, "prompt_learner", "model.pth.tar-2"))
    norms = ckpt["state_dict"]["ctx"].norm(dim=-1)
    last = lines[-1]
    assert [last[f"ctx_norm_{j}"] for j in range(4)] == pytest.approx(norms.tolist(), rel=1e-5)
    assert last["ctx_norm_mean"] == pytest.approx(float(norms.mean()), rel=1e-5)
    assert last["ctx_norm_fro"] == pytest.approx(float(ckpt["state_dict"]["ctx"].norm()), rel=1e-5)
    assert last["omega"] == 0.5 and lines[0]["omega"] == pytest.approx(1 - 1 / (1 + math.exp(0.2)))
    assert {"ce", "pun", "pan", "pan_flagged"} <= set(last)
    assert all(0.0 <= last[f"pan_flag_rate_{j}"] <= 1.0 for j in range(4))
    # the final test accuracy equals the last epoch's logged test_acc
    res = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))
    assert last["test_acc"] == pytest.approx(res["metrics"]["accuracy"])
    # the position generator travels with the checkpoint (a resumed run draws the same positions)
    assert torch.equal(ckpt["nemesis_position_rng"], t.position_rng.get_state())
    _, t2 = _trainer(tmp_path, "reload", opts=PAN_OPTS)
    assert not torch.equal(t2.position_rng.get_state(), t.position_rng.get_state())
    t2.load_model(cfg.OUTPUT_DIR, epoch=2)
    assert torch.equal(t2.position_rng.get_state(), t.position_rng.get_state())


def test_batched_pre_inference_features_equal_the_trainers_own(tmp_path):
    """The chunked (1 + K) * C batch gives each copy's text features exactly (CSC, class name in the middle)."""
    _, t = _trainer(tmp_path, "csc", opts=["TRAINER.COOP.CSC", "True", "TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"])
    ctx = t.prompt_learner.ctx
    assert ctx.shape == (6, 4, 40)
    variants = rescaled_variants(ctx, torch.tensor([3, 0, 1]), 0.0)
    expected = []
    for v in variants:
        with torch.no_grad(), context_value(t.prompt_learner, v):
            expected.append(t.text_features().float())
    for chunk in (1, 7, 1024):
        got = BatchedTextScorer(t, chunk).text_features(variants)
        assert torch.allclose(got, torch.stack(expected), atol=1e-5)


def test_random_positions_ablation_penalises_the_drawn_positions(nemesis_run):
    _, t = nemesis_run
    state = t.position_rng.get_state()
    expected = sample_positions(4, 2, torch.Generator().set_state(state))
    t.cfg.defrost()
    t.cfg.TRAINER.NEMESIS.PRE_INFERENCE = False
    try:
        flagged = t.flag_positions(None, None)  # no pre-inference: the batch is not even looked at
    finally:
        t.cfg.TRAINER.NEMESIS.PRE_INFERENCE = True
        t.cfg.freeze()
    assert sorted(torch.nonzero(flagged).flatten().tolist()) == sorted(expected.tolist())


def test_zero_weight_trains_exactly_like_coop(coop_run, tmp_path):
    _, _, coop_ctx, _ = coop_run
    _, nem = _trainer(tmp_path, "nem", opts=["TRAINER.NEMESIS.A", "0.0"])
    nem.train()
    assert torch.equal(coop_ctx, nem.prompt_learner.ctx)


def test_pun_lowers_the_prompt_norm(coop_run, tmp_path):
    _, _, coop_ctx, _ = coop_run
    _, nem = _trainer(tmp_path, "pun", opts=["TRAINER.NEMESIS.A", "20.0", "TRAINER.NEMESIS.SCHEDULE", "constant"])
    nem.train()
    assert float(nem.prompt_learner.ctx.norm(dim=-1).mean()) < float(coop_ctx.norm(dim=-1).mean())


def test_cocoop_base_completes_with_pan(tmp_path):
    opts = ["TRAINER.NEMESIS.BASE", "cocoop", "TRAINER.COCOOP.N_CTX", "4", "TRAINER.COCOOP.PREC", "fp32",
            "TRAINER.NEMESIS.BETA", "0.5", "TRAINER.NEMESIS.NP", "1", "DATASET.NUM_SHOTS", "2",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4"]
    cfg, t = _trainer(tmp_path, "cocoop", opts=opts)
    assert type(t).__name__ == "NemesisCoCoOp" and isinstance(t.pan_scorer, SwappedContextScorer)
    t.train()
    line = _metrics(cfg)[-1]
    assert {"pun", "pan", "ctx_norm_3"} <= set(line)
    res = json.load(open(os.path.join(cfg.OUTPUT_DIR, "results.json")))
    # the corruption study rebuilds the Nemesis-over-CoCoOp run from its config.yaml (image-conditioned path)
    out = tmp_path / "crt.json"
    assert corruption.main(["--model-dir", cfg.OUTPUT_DIR, "--positions", "2", "--replace", "--rescale", "1.0",
                            "--out", str(out)]) == 0
    rec = json.load(open(out))
    assert rec["trainer"] == "Nemesis" and rec["original_accuracy"] == pytest.approx(res["metrics"]["accuracy"])
    assert rec["results"][0]["accuracy"] == pytest.approx(rec["original_accuracy"])


def test_bad_settings_say_what_to_change(tmp_path):
    with pytest.raises(ValueError, match="BETA is 1.5"):
        _trainer(tmp_path, "a", opts=["TRAINER.NEMESIS.BETA", "1.5"])
    with pytest.raises(ValueError, match="NP is 9"):
        _trainer(tmp_path, "b", opts=["TRAINER.NEMESIS.BETA", "0.0", "TRAINER.NEMESIS.NP", "9"])
    with pytest.raises(ValueError, match="BASE is \"plot\""):
        _trainer(tmp_path, "c", opts=["TRAINER.NEMESIS.BASE", "plot"])
    with pytest.raises(ValueError, match="NORM"):
        _trainer(tmp_path, "d", opts=["TRAINER.NEMESIS.NORM", "l2"])


# ---- the corruption study and the plots -------------------------------------------------------------------------
def test_corruption_study_on_a_coop_checkpoint(coop_run, tmp_path, capsys):
    cfg, t, trained_ctx, original = coop_run
    out = tmp_path / "crt.json"
    argv = ["--model-dir", cfg.OUTPUT_DIR, "--load-epoch", "1", "--positions", "0", "3", "--replace", "0",
            "--rescale", "1.0", "0.5", "--out", str(out)]
    assert corruption.main(argv) == 0
    rec = json.load(open(out))
    assert rec["trainer"] == "CoOp" and rec["n_ctx"] == 4
    assert rec["original_accuracy"] == pytest.approx(original)
    assert rec["context_norms"] == pytest.approx(trained_ctx.norm(dim=-1).tolist(), rel=1e-5)
    rows = {(r["corruption"], r["value"], r["position"]): r for r in rec["results"]}
    assert len(rows) == 2 * 3
    assert rows[("replace", 0.0, 3)]["norm_after"] == 0.0
    assert rows[("rescale", 0.5, 0)]["norm_after"] == pytest.approx(0.5 * rows[("rescale", 0.5, 0)]["norm_before"])
    for j in (0, 3):  # rescaling by 1 changes nothing
        assert rows[("rescale", 1.0, j)]["accuracy"] == pytest.approx(original)
    for r in rec["results"]:
        assert r["improves"] == (r["accuracy"] > original)
        assert r["low_norm_effect"] == (r["improves"] and r["norm_after"] < r["norm_before"])
        listed = rec["low_norm_effect"][corruption.setting_label(r["corruption"], r["value"])]
        assert (r["position"] in listed) == r["low_norm_effect"]
    assert "Original accuracy" in capsys.readouterr().out
    # a corrupted accuracy is the trainer's own evaluation of that corrupted prompt
    cfg2, t2 = _trainer(tmp_path, "check", trainer="CoOp")
    t2.load_model(cfg.OUTPUT_DIR, epoch=1)
    with torch.no_grad():
        t2.prompt_learner.ctx[3] = 0.0
    assert t2.test() == pytest.approx(rows[("replace", 0.0, 3)]["accuracy"])


def test_corruption_fast_path_matches_the_full_evaluation(coop_run):
    _, t, _, _ = coop_run
    t.set_model_mode("eval")
    fast = corruption.accuracy_function(t, t.test_loader)
    t.IMAGE_CONDITIONED_TEXT = True  # forces the trainer's own evaluation path
    try:
        full = corruption.accuracy_function(t, t.test_loader)
        study_fast = corruption.run_study(t, fast, [1], [0.5], [0.1])
        study_full = corruption.run_study(t, full, [1], [0.5], [0.1])
    finally:
        del t.IMAGE_CONDITIONED_TEXT
    assert [r["accuracy"] for r in study_fast["results"]] == pytest.approx(
        [r["accuracy"] for r in study_full["results"]])


def test_corruption_errors_name_the_fix(tmp_path, capsys):
    assert corruption.main(["--model-dir", str(tmp_path / "nowhere")]) == 2
    assert "config.yaml not found" in capsys.readouterr().err


def test_plots_of_norm_and_accuracy_curves(nemesis_run, coop_run, tmp_path, capsys):
    cfg, _ = nemesis_run
    out = tmp_path / "fig" / "lownorm.png"
    assert nemesis_plots.main([cfg.OUTPUT_DIR, "--out", str(out), "--labels", "PUN+PAN"]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    assert nemesis_plots.main([coop_run[0].OUTPUT_DIR, "--out", str(out)]) == 2
    assert "TRAINER.NEMESIS.A 0" in capsys.readouterr().err


# ---- configs -------------------------------------------------------------------------------------------------
def _config(name):
    from engine.config import build_cfg

    return build_cfg("", os.path.join(REPO, "configs", "trainers", "Nemesis", f"{name}.yaml"), [])


def test_config_files_merge_and_follow_the_protocols():
    files = sorted(glob.glob(os.path.join(REPO, "configs", "trainers", "Nemesis", "*.yaml")))
    assert files
    for path in files:
        cfg = _config(os.path.basename(path)[:-5])
        raw = yaml.safe_load(open(path))
        assert "NEMESIS" in raw["TRAINER"], path  # every file states its Nemesis setting
        name = os.path.basename(path)
        if name.startswith("rn50"):
            epochs = 50 if "_ep50" in name else 100 if "_ep100" in name else 200
            assert cfg.OPTIM.MAX_EPOCH == epochs and cfg.MODEL.BACKBONE.NAME == "RN50", name
            assert cfg.TRAINER.NEMESIS.BASE == "coop" and cfg.TRAINER.COOP.N_CTX == 16
        if "_fp" in name:  # the Food101 / OxfordPets overrides the released code hard-wired
            assert cfg.TRAINER.NEMESIS.SCHEDULE == "constant"
            assert cfg.TRAINER.NEMESIS.PAN_A == (50.0 if "pan" in name else -1.0)
        if name.startswith("vit_b16_c4"):
            assert cfg.TRAINER.NEMESIS.BASE == "cocoop" and cfg.OPTIM.MAX_EPOCH == 10
    assert _config("rn50_pan_a10_ep50").TRAINER.NEMESIS.A == 10.0
    assert _config("rn50_pun_ep50").TRAINER.NEMESIS.BETA == 1.0 and _config("rn50_pan_ep50").TRAINER.NEMESIS.BETA == 0.0
