"""Your own data: a generated folder dataset (class folders, a corrupt image, classnames.txt) -> CoOp trained on
toyclip -> tools.predict with new class names -> tools.export read by plain open_clip."""
import csv
import io
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clip.toyclip import create_toyclip
from datasets.show import main as show_main
from engine.data.data_manager import read_image
from tools import export, predict
from tools.trained_model import load_run, eval_transform

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = {"red_ball": (220, 30, 30), "green_leaf": (30, 200, 40), "blue_sky": (30, 40, 220), "gold": (230, 220, 30)}
NEW_NAMES = ["red circle", "green square", "yellow star", "purple cat", "blue ball"]


def make_folder(root, n=10, seed=0):
    rng = np.random.default_rng(seed)
    for name, rgb in FOLDERS.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(n):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))
    with open(os.path.join(root, "gold", "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8 not really a jpeg")
    with open(os.path.join(root, "classnames.txt"), "w") as f:
        f.write("gold golden retriever\n")
    return root


def show(root, capsys, *args):
    assert show_main(["--root", root, "--dataset-config-file", f"{REPO}/configs/datasets/folder.yaml", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One CoOp run on the folder dataset (toyclip, 2 shots, 2 epochs)."""
    import train

    base = tmp_path_factory.mktemp("own")
    root = make_folder(str(base / "photos"))
    out = str(base / "run")
    rc = train.main(["--root", root, "--trainer", "CoOp", "--seed", "1", "--output-dir", out,
                     "--dataset-config-file", f"{REPO}/configs/datasets/folder.yaml",
                     "--config-file", f"{REPO}/configs/trainers/CoOp/toy.yaml",
                     "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "2"])
    assert rc == 0
    return root, out


def test_folder_dataset_split_names_and_reuse(run, capsys, caplog):
    root, out = run
    data = show(root, capsys)
    assert data["classnames"] == ["blue sky", "golden retriever", "green leaf", "red ball"]
    for label in range(4):  # 10 images per class -> CoOp's 50/20/30 rule; the corrupt one is left out
        assert [sum(1 for r in data[k] if r[1] == label) for k in ("train", "val", "test")] == [5, 2, 3]
    assert not any("broken" in r[0] for k in ("train", "val", "test") for r in data[k])
    with open(os.path.join(root, "split_zhou_Folder.json")) as f, open(os.path.join(out, "split_zhou_Folder.json")) as g:
        assert f.read() == g.read()  # saved in the dataset folder (reused) and recorded in the run

    Image.new("RGB", (32, 32)).save(os.path.join(root, "red_ball", "new.png"))
    try:
        assert show(root, capsys) == data  # the saved split is reused; the new image is reported, not used
        assert "not in the split" in caplog.text and "red_ball/new.png" in caplog.text
    finally:
        os.remove(os.path.join(root, "red_ball", "new.png"))

    fewshot = show(root, capsys, "--num-shots", "2", "--subsample", "new")
    assert fewshot["classnames"] == ["green leaf", "red ball"]
    assert len(fewshot["train"]) == 4 and {r[1] for r in fewshot["train"]} == {0, 1}


def test_image_list_dataset(tmp_path, capsys):
    root = make_folder(str(tmp_path / "imgs"), n=5)
    rows = [["path", "label"]] + [[f"imgs/{name}/{i}.png", name] for name in ("red_ball", "blue_sky") for i in range(5)]
    listing = tmp_path / "list.csv"
    listing.write_text("\n".join(",".join(r) for r in rows) + "\n")
    data = show(str(listing), capsys)
    assert data["classnames"] == ["blue sky", "red ball"]  # labels are class names, "_" read as a space
    assert sorted(r[0] for k in ("train", "val", "test") for r in data[k]) == sorted(r[0] for r in rows[1:])
    assert os.path.isfile(tmp_path / "split_zhou_Folder.json") and root


def predictions(argv, capsys):
    assert predict.main([*argv, "--no-progress"]) == 0
    return capsys.readouterr().out


def independent_coop_logits(out, classnames, images):
    """CoOp's logits for ``classnames`` built by hand from the saved context and open_clip's toyclip."""
    import clip
    from engine.utils import load_checkpoint
    from trainers.base import clip_logits
    from trainers.coop import CoOpPromptLearner

    ckpt = load_checkpoint(os.path.join(out, "prompt_learner", "model.pth.tar-2"))
    backbone = clip.load("toyclip")
    learner = CoOpPromptLearner(backbone, classnames, n_ctx=4, ctx_init="a photo of a")
    learner.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        p = learner()
        text = backbone.encode_text_from_embeddings(p.embeddings, p.eot_index)
        return clip_logits(create_toyclip().encode_image(images), text, backbone.logit_scale)


def test_predict_with_new_class_names_matches_model_inference(run, capsys, tmp_path):
    root, out = run
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(NEW_NAMES) + "\n\n")
    lines = predictions(["--model-dir", out, "--classnames", str(names_file), "--topk", "3",
                         os.path.join(root, "red_ball"), os.path.join(root, "gold", "[0-2].png")], capsys)
    records = [json.loads(line) for line in lines.splitlines()]
    paths = [r["path"] for r in records]
    assert len(records) == 13 and paths[0].endswith("red_ball/0.png") and paths[-1].endswith("gold/2.png")

    trainer = load_run(out, NEW_NAMES)
    tfm = eval_transform(trainer)
    images = torch.stack([tfm(read_image(p)) for p in paths])
    with torch.no_grad():
        trainer.before_test()
        probs = trainer.model_inference(images).softmax(-1)
    expected = independent_coop_logits(out, NEW_NAMES, images).softmax(-1)
    assert torch.allclose(probs, expected, atol=1e-6)
    for record, row in zip(records, probs):
        values, idx = row.topk(3)
        assert [name for name, _ in record["topk"]] == [NEW_NAMES[i] for i in idx]
        assert np.allclose([p for _, p in record["topk"]], values.numpy(), atol=1e-6)

    table = list(csv.reader(io.StringIO(predictions(["--model-dir", out, "--classnames", "cat", "dog",
                                                     "--format", "csv", os.path.join(root, "blue_sky", "1.png")],
                                                    capsys))))
    assert table[0] == ["path", "class_1", "prob_1", "class_2", "prob_2"] and len(table) == 2
    assert abs(float(table[1][2]) + float(table[1][4]) - 1) < 1e-5


def test_unreadable_input_is_reported_and_skipped(run, capsys):
    root, out = run
    code = predict.main(["--model-dir", out, "--classnames", "a", "b", "--no-progress", os.path.join(root, "gold")])
    captured = capsys.readouterr()
    assert code == 3 and "broken.jpg" in captured.err and len(captured.out.splitlines()) == 10


def test_zero_shot_prediction(run, capsys):
    root, _ = run
    path = os.path.join(root, "green_leaf", "3.png")
    record = json.loads(predictions(["--trainer", "ZeroshotCLIP", "--backbone", "toyclip", "--classnames",
                                     *NEW_NAMES, "--topk", "5", path], capsys))
    model = create_toyclip()
    from clip.toyclip import image_transform, tokenizer

    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer()([f"a photo of a {c}." for c in NEW_NAMES])), dim=-1)
        img = F.normalize(model.encode_image(image_transform()(Image.open(path).convert("RGB"))[None]), dim=-1)
        probs = (model.logit_scale.exp() * img @ text.T).softmax(-1)[0]
    assert dict(record["topk"]) == pytest.approx({c: float(p) for c, p in zip(NEW_NAMES, probs)}, abs=1e-5)


def test_export_text_features_for_plain_open_clip(run, tmp_path):
    root, out = run
    target = str(tmp_path / "coop.pt")
    assert export.main([out, "--out", target, "--classnames", *NEW_NAMES]) == 0
    art = torch.load(target, weights_only=True)
    assert art["kind"] == "text_features" and art["classnames"] == NEW_NAMES and art["backbone"] == "toyclip"

    model = create_toyclip()  # plain open_clip from here on: encode_image, normalise, scale, matmul
    trainer = load_run(out, NEW_NAMES)
    images = torch.stack([eval_transform(trainer)(read_image(os.path.join(root, "blue_sky", f"{i}.png")))
                          for i in range(4)])
    with torch.no_grad():
        logits = art["logit_scale"] * F.normalize(model.encode_image(images), dim=-1) @ art["text_features"].T
        trainer.before_test()
        expected = trainer.model_inference(images)
    assert torch.allclose(logits, expected, rtol=0, atol=1e-5 * expected.abs().max().item())
    assert art["visual_sha256"] == export.visual_sha256(trainer)


def test_export_prompts_serves_tools_predict(run, capsys, tmp_path):
    root, out = run
    target = str(tmp_path / "coop_prompts.pt")
    assert export.main([out, "--out", target, "--kind", "prompts", "--classnames", "x", "y"]) == 0
    art = torch.load(target, weights_only=True)
    assert art["kind"] == "prompts" and set(art["modules"]) == {"prompt_learner"} and "TRAINER" in art["config"]
    image = os.path.join(root, "red_ball", "2.png")
    args = ["--classnames", *NEW_NAMES, "--topk", "5", image]
    assert predictions(["--model-dir", target, *args], capsys) == predictions(["--model-dir", out, *args], capsys)


def test_export_refuses_features_for_image_conditioned_prompts(tmp_path):
    from tests.helpers import tiny_cfg
    from engine import build_trainer

    trainer = build_trainer(tiny_cfg(str(tmp_path / "data"), str(tmp_path / "o"), trainer="CoCoOp",
                                     opts=["TRAINER.COCOOP.N_CTX", "4"]))
    assert not export.feature_kind(trainer)
    with pytest.raises(ValueError, match="--kind prompts"):
        export.export(trainer, "text_features")
    assert export.export(trainer)["kind"] == "prompts"


def test_readme_export_snippet(run, tmp_path, monkeypatch, capsys):
    """The README's open_clip snippet, run as written on an export of the toyclip run (``create_model_and_transforms``
    returns toyclip, which has no open_clip name), gives the trainer's prediction."""
    import open_clip
    from clip.toyclip import image_transform

    root, out = run
    text = open(os.path.join(REPO, "README.md")).read().split("<!-- export-snippet -->")[1]
    snippet = text.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    assert export.main([out, "--out", "photos_coop.pt", "--classnames", *NEW_NAMES]) == 0
    Image.open(os.path.join(root, "green_leaf", "4.png")).save("fox.jpg", quality=95)
    monkeypatch.setattr(open_clip, "create_model_and_transforms",
                        lambda arch, pretrained: (create_toyclip(), None, image_transform()))
    art = torch.load("photos_coop.pt", weights_only=True)
    art["open_clip"] = {"arch": "toyclip", "pretrained": "none"}
    torch.save(art, "photos_coop.pt")
    capsys.readouterr()
    exec(compile(snippet, "README.md", "exec"), {})
    name, prob = capsys.readouterr().out.rsplit(" ", 1)

    trainer = load_run(out, NEW_NAMES)
    with torch.no_grad():
        trainer.before_test()
        probs = trainer.model_inference(image_transform()(read_image("fox.jpg"))[None]).softmax(-1)[0]
    assert name == NEW_NAMES[int(probs.argmax())] and abs(float(prob) - float(probs.max())) < 1e-5


def test_lamm_run_for_unseen_names_falls_back_to_their_tokens(tmp_path):
    """tools.predict's trainer for names LAMM never saw: known names get their learned labels, the others none."""
    from engine import build_trainer
    from tests.helpers import tiny_cfg

    out = str(tmp_path / "lamm")
    trainer = build_trainer(tiny_cfg(str(tmp_path / "data"), out, trainer="LAMM", opts=["TRAINER.LAMM.BASE", "coop"]))
    with torch.no_grad():
        trainer.labels.values.add_(torch.randn_like(trainer.labels.values))
    trainer.save_model(0, out)
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write(trainer.cfg.dump())
    saved = trainer.labels.by_class()

    served = load_run(out, ["green", "teal thing", "red"])
    assert served.labels.counts[1] == 0 and served.labels.counts[0] > 0 and served.labels.counts[2] > 0
    table = served.labels.by_class()
    assert torch.equal(table["green"][0], saved["green"][0]) and torch.equal(table["red"][0], saved["red"][0])


def test_zero_shot_export(tmp_path):
    target = str(tmp_path / "zs.pt")
    assert export.main(["--trainer", "ZeroshotCLIP", "--backbone", "toyclip", "--classnames", *NEW_NAMES,
                        "--out", target]) == 0
    art = torch.load(target, weights_only=True)
    from clip.toyclip import tokenizer

    model = create_toyclip()
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer()([f"a photo of a {c}." for c in NEW_NAMES])), dim=-1)
    assert art["kind"] == "text_features" and torch.allclose(art["text_features"], text, atol=1e-6)
    assert art["logit_scale"] == pytest.approx(float(model.logit_scale.detach().exp()))
