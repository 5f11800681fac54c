"""LAMM: label tables, each loss term against a hand computation, training, saving/loading, fallback, continual."""
import json
import logging
import math
import os

import pytest
import torch

import clip
from engine import build_trainer
from engine.utils import latest_checkpoint, load_checkpoint, set_random_seed, setup_logger
from tests.helpers import TINY_VIT, tiny_cfg
from experiments import lamm_continual
from trainers.lamm import LABEL_PREFIX, META_KEY
from trainers.lamm_labels import LabelTable, class_keys
from trainers.lamm_losses import feature_cosine_loss, logit_distillation

MAPLE_OPTS = ["TRAINER.LAMM.N_CTX", "2", "TRAINER.LAMM.PROMPT_DEPTH", "3"]


@pytest.fixture(scope="module")
def backbone():
    return clip.load(TINY_VIT)


def _trainer(tmp_path, name, base="clip", epochs=1, opts=(), seed=1):
    out = str(tmp_path / name)
    extra = MAPLE_OPTS if base == "maple" else []
    cfg = tiny_cfg(str(tmp_path / "data"), out, trainer="LAMM", seed=seed,
                   opts=["OPTIM.MAX_EPOCH", str(epochs), "DATASET.NUM_SHOTS", "4", "TRAINER.LAMM.PREC", "fp32",
                         "TRAINER.LAMM.BASE", base, *extra, *opts])
    setup_logger(out)
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


# ---- label tables ---------------------------------------------------------------------------------------------

def test_label_table_layout_all_and_min_len(backbone):
    names = ["red", "dark green car", "light blue"]
    lens = [len(clip.encode(n)) for n in names]
    assert lens == [1, 3, 2]
    emb = backbone.token_embedding(clip.tokenize(names, context_length=backbone.context_length)).float()

    full = LabelTable(backbone, names, "all")
    assert full.counts == lens and full.values.shape == (6, backbone.text_width)
    assert full.rows.tolist() == [0, 1, 1, 1, 2, 2] and full.cols.tolist() == [0, 0, 1, 2, 0, 1]
    assert torch.equal(full.values.detach()[1:4], emb[1, 1:4])  # every token of "dark green car"

    short = LabelTable(backbone, names, "min_len")
    assert short.counts == [1, 1, 1]  # min over the class set = 1 token each (the released code)
    assert torch.equal(short.values.detach(), emb[:, 1])
    assert torch.equal(short.anchor, short.values.detach())

    suffix = torch.zeros(3, 5, backbone.text_width)
    with torch.no_grad():
        full.values.add_(1.0)
    written = full.write(suffix, offset=1)
    changed = (written != 0).any(-1)
    assert changed.tolist() == [[False, True, False, False, False], [False, True, True, True, False],
                                [False, True, True, False, False]]


def test_class_keys_number_repeated_names():
    assert class_keys(["crane", "dog", "crane", "crane"]) == ["crane", "dog", "crane [2]", "crane [3]"]


def test_random_init_anchors_the_random_draw(backbone):
    names = ["red", "light blue"]
    a = LabelTable(backbone, names, random_init=True, generator=torch.Generator().manual_seed(0))
    b = LabelTable(backbone, names, random_init=True, generator=torch.Generator().manual_seed(0))
    word = LabelTable(backbone, names)
    assert torch.equal(a.values, b.values) and torch.equal(a.anchor, a.values.detach())
    assert not torch.allclose(a.anchor, word.anchor)
    assert 0.01 < a.values.std().item() < 0.03


# ---- loss terms against hand computations ------------------------------------------------------------------------

def test_weight_consolidation_is_the_unnormalised_sum(backbone):
    table = LabelTable(backbone, ["red", "dark green car"], "all")  # 4 learned tokens
    with torch.no_grad():
        table.values[1].add_(0.5)  # one token of "dark green car", every dimension
        table.values[3, :2].sub_(2.0)  # two dimensions of another token
    d = backbone.text_width
    expected = d * 0.25 + 2 * 4.0
    assert table.consolidation_loss().item() == pytest.approx(expected, rel=1e-5)


def test_cosine_loss_by_hand():
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    t0 = torch.tensor([[1.0, 1.0], [0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1, 1])
    loss = feature_cosine_loss(t, t0, labels, "released")
    # per sample: 1 - cos((1,0),(1,1)) = 1 - 1/sqrt(2); 1 - cos((0,2),(0,1)) = 0 twice; mean over 3 samples
    assert loss.item() == pytest.approx((1 - 1 / math.sqrt(2)) / 3, rel=1e-6)
    loss.backward()
    assert t.grad is not None and t0.grad is None  # the target is detached


def test_cosine_loss_is_zero_for_a_one_class_batch_when_released():
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t0 = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    same = torch.tensor([0, 0, 0])
    assert feature_cosine_loss(t, t0, same, "released").item() == 0.0
    assert feature_cosine_loss(t, t0, same, "standard").item() == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)
    assert feature_cosine_loss(t, t0, torch.tensor([1]), "released").item() == 0.0  # batch size 1: always 0


def _softmax(row, T):
    e = [math.exp(v / T) for v in row]
    return [x / sum(e) for x in e]


def test_released_distillation_by_hand():
    z = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], requires_grad=True)
    z0 = torch.tensor([[0.5, 0.0, 1.0], [2.0, 0.0, 0.0]], requires_grad=True)
    T = 2.0
    expected = 0.0
    for a, b in zip(z.tolist(), z0.tolist()):
        p, q = _softmax(a, T), _softmax(b, T)
        expected += -sum(pi * math.log(qi) for pi, qi in zip(p, q))
    expected = expected / 2 * T * T
    loss = logit_distillation(z, z0, T, "released")
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert z.grad.abs().sum() > 0 and z0.grad.abs().sum() > 0  # neither side is detached


def test_standard_distillation_by_hand():
    z = torch.tensor([[1.0, 2.0, 0.0]], requires_grad=True)
    z0 = torch.tensor([[0.5, 0.0, 1.0]], requires_grad=True)
    T = 2.0
    p, q = _softmax([0.5, 0.0, 1.0], T), _softmax([1.0, 2.0, 0.0], T)  # teacher z0, student z
    expected = T * T * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    loss = logit_distillation(z, z0, T, "standard")
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert z0.grad is None and z.grad.abs().sum() > 0
    same = torch.tensor([[1.0, 2.0, 0.0]])
    assert logit_distillation(same, same, T, "standard").item() == pytest.approx(0.0, abs=1e-6)
    assert logit_distillation(same, same, T, "released").item() > 0.5  # T^2 * entropy, not zero


# ---- the trainer --------------------------------------------------------------------------------------------

def _embeddings(learner):
    with torch.no_grad():
        return learner().embeddings, learner.original().embeddings


@pytest.mark.parametrize("base, opts, offset", [
    ("clip", [], 0), ("coop", [], 0),
    ("maple", ["TRAINER.LAMM.MAPLE_LABEL_SLOT", "name"], 2),  # "[SOS] ctx ctx of a {name}" -> name after "of a"
])
def test_learned_prompt_starts_as_the_class_name_prompt(tmp_path, base, opts, offset):
    t = _trainer(tmp_path, base, base=base, opts=opts)
    learned, original = _embeddings(t.prompt_learner)
    assert torch.equal(learned, original)
    assert t.prompt_learner.offset == offset


def test_label_tokens_default_to_the_released_min_len(tmp_path):
    t = _trainer(tmp_path, "defaults", base="coop")
    names = ["red", "dark green car", "light blue"]  # 1, 3 and 2 tokens: min_len = 1 learned token per class
    assert t.build_label_table(t.clip_model, names).counts == [1, 1, 1]
    t = _trainer(tmp_path, "all", base="coop", opts=["TRAINER.LAMM.LABEL_TOKENS", "all"])
    assert t.build_label_table(t.clip_model, names).counts == [1, 3, 2]


def test_released_maple_slot_replaces_of_and_keeps_the_name(tmp_path):
    t = _trainer(tmp_path, "slot", base="maple")  # the default slot
    learned, original = _embeddings(t.prompt_learner)
    n_ctx = t.prompt_learner.prompt.n_ctx
    slot = 1 + n_ctx  # "[SOS] ctx ctx of a {name}." -> the position of "of"
    diff = (learned != original).any(-1)
    assert diff[:, slot].all() and diff.sum() == len(t.classnames)
    first_name_token = t.clip_model.token_embedding(t.clip_model.tokenize(t.classnames))[:, 1].float()
    assert torch.equal(learned[:, slot], first_name_token)
    assert t.labels.counts == [1] * 6


def test_loss_terms_compose_with_their_weights(tmp_path):
    t = _trainer(tmp_path, "w", base="coop", opts=["TRAINER.LAMM.WC_PER_SHOT", "True", "TRAINER.LAMM.KD_WEIGHT",
                                                   "0.3", "TRAINER.LAMM.COS_WEIGHT", "2.0"])
    assert t.wc_weight == pytest.approx(1 / 4)
    with torch.no_grad():
        t.labels.values.add_(0.01)
    batch = next(iter(t.train_loader_x))
    loss, logits, terms = t.compute_loss(batch["img"], batch["label"])
    assert set(terms) == {"ce", "wc", "cos", "kd"}
    expected = terms["ce"] + terms["wc"] / 4 + 2.0 * terms["cos"] + 0.3 * terms["kd"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["wc"].item() == pytest.approx(t.labels.values.numel() * 1e-4, rel=1e-3)
    assert logits.shape == (len(batch["label"]), 6)


def test_label_tokens_train_and_the_anchor_does_not(tmp_path):
    t = _trainer(tmp_path, "run", base="clip", epochs=2)
    values0, anchor0 = t.labels.values.detach().clone(), t.labels.anchor.clone()
    ctx0 = t.prompt_learner.prompt.ctx.detach().clone()
    t.train()
    assert not torch.allclose(t.labels.values.detach(), values0)
    assert torch.equal(t.labels.anchor, anchor0)
    assert torch.equal(t.prompt_learner.prompt.ctx, ctx0)  # "LAMM" alone: the context stays "a photo of a"
    lines = [json.loads(x) for x in open(os.path.join(t.output_dir, "metrics.jsonl"))]
    assert {"ce", "wc", "cos", "kd"} <= set(lines[-1]) and lines[-1]["wc"] > 0
    ckpt = load_checkpoint(os.path.join(t.output_dir, "prompt_learner", "model.pth.tar-2"))
    assert ckpt[META_KEY] == {"classnames": t.classnames, "counts": [1] * 6}
    assert torch.equal(ckpt["state_dict"][LABEL_PREFIX + "values"], t.labels.values.detach())


def test_save_and_load_keep_the_learned_labels(tmp_path):
    t = _trainer(tmp_path, "run", base="coop", epochs=1)
    t.train()
    batch = next(iter(t.test_loader))
    with torch.no_grad():
        before = t.logits(batch["img"])
    t2 = _trainer(tmp_path, "eval", base="coop")  # same seed: the random tiny backbone is the same
    assert not torch.equal(t2.labels.values, t.labels.values)
    t2.load_model(t.output_dir, epoch=1)
    assert torch.equal(t2.labels.values, t.labels.values) and torch.equal(t2.labels.anchor, t.labels.anchor)
    assert torch.equal(t2.prompt_learner.prompt.ctx, t.prompt_learner.prompt.ctx)
    with torch.no_grad():
        assert torch.allclose(t2.logits(batch["img"]), before, atol=1e-6)


def test_new_classes_fall_back_to_their_names_with_a_log_line(tmp_path, caplog):
    t = _trainer(tmp_path, "base", base="clip", opts=["DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.LAMM.RANDOM_INIT",
                                                      "True"])
    t.train()
    learned_base = t.labels.by_class()
    t2 = _trainer(tmp_path, "all", base="clip", opts=["TRAINER.LAMM.RANDOM_INIT", "True"])
    with caplog.at_level(logging.INFO, logger="trainers.lamm"):
        t2.load_model(t.output_dir, epoch=1)
    assert "no learned label for 3 classes (yellow, purple, orange)" in caplog.text
    assert t2.labels.counts == [1, 1, 1, 0, 0, 0]
    for name in ("red", "green", "blue"):
        assert torch.equal(t2.labels.by_class()[name][0], learned_base[name][0])
    learned, original = _embeddings(t2.prompt_learner)
    assert torch.equal(learned[3:], original[3:])  # the random init is gone: the new classes use their names
    assert not torch.equal(learned[:3], original[:3])
    assert t2.test() >= 0


@pytest.mark.parametrize("base", ["clip", "coop", "maple"])
def test_fewshot_run_completes_for_each_base(tmp_path, base):
    t = _trainer(tmp_path, base, base=base, epochs=1)
    t.train()
    res = json.load(open(os.path.join(t.output_dir, "results.json")))
    assert res["trainer"] == "LAMM" and res["num_shots"] == 4 and res["metrics"]["total"] == 24
    assert res["config"]["TRAINER"]["LAMM"]["BASE"] == base


def test_bad_base_is_named(tmp_path):
    with pytest.raises(ValueError, match='TRAINER.LAMM.BASE is "coco"'):
        _trainer(tmp_path, "bad", base="coco")


# ---- continual learning ---------------------------------------------------------------------------------------

def _continual_argv(tmp_path, out):
    return ["--root", str(tmp_path / "data"), "--config-file", "configs/trainers/LAMM/vit_b16_ep50_ctxv1.yaml",
            "--output-dir", str(out), "--seed", "1", "--shots", "4", "--backbone", TINY_VIT,
            "DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "1", "TRAINER.LAMM.PREC", "fp32", "INPUT.SIZE",
            "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "OPTIM.LR", "0.05"]


def test_continual_learning_keeps_the_first_set_untouched(tmp_path):
    tiny_cfg(str(tmp_path / "data"), str(tmp_path / "unused"))  # generates the dataset
    out = tmp_path / "continual"
    argv = _continual_argv(tmp_path, out)
    args = lamm_continual.build_parser().parse_args(argv)
    lamm_continual.run_train(lamm_continual.train_argv(args, str(out / "set1"), "base"))
    set1_path = lamm_continual.final_checkpoint(str(out / "set1"))
    set1_bytes = open(set1_path, "rb").read()
    set1 = load_checkpoint(set1_path)

    assert lamm_continual.main(argv) == 0  # set 1 is finished (not rerun); set 2, merge, union evaluation

    assert open(set1_path, "rb").read() == set1_bytes  # the second run never wrote set 1's checkpoint
    set2 = load_checkpoint(lamm_continual.final_checkpoint(str(out / "set2")))
    merged = load_checkpoint(latest_checkpoint(str(out / "merged" / "prompt_learner")))
    values = merged["state_dict"][LABEL_PREFIX + "values"]
    assert merged[META_KEY]["classnames"] == ["red", "green", "blue", "yellow", "purple", "orange"]
    assert torch.equal(values[:3], set1["state_dict"][LABEL_PREFIX + "values"])
    assert torch.equal(values[3:], set2["state_dict"][LABEL_PREFIX + "values"])
    assert not torch.equal(values, merged["state_dict"][LABEL_PREFIX + "anchor"])  # both halves trained

    summary = json.load(open(out / "continual.json"))
    union = json.load(open(out / "union" / "results.json"))
    assert union["num_classes"] == 6 and union["eval_only"] and summary["num_classes"] == 6
    assert summary["union_accuracy"] == pytest.approx(union["metrics"]["accuracy"])
    assert "learned label tokens loaded for 6 of 6 classes" in open(out / "union" / "log.txt").read()


def test_merge_refuses_runs_with_different_contexts(tmp_path):
    paths = []
    for i, subset in enumerate(("base", "new")):
        t = _trainer(tmp_path, f"coop{i}", base="coop", opts=["DATASET.SUBSAMPLE_CLASSES", subset])
        t.train()
        paths.append(latest_checkpoint(os.path.join(t.output_dir, "prompt_learner")))
    with pytest.raises(lamm_continual.ContinualError, match="prompt.ctx.*BASE clip"):
        lamm_continual.merge_label_checkpoints(paths)
