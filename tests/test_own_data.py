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

from clip.toyclip import TOYCLIP_CONFIG, create_toyclip
from datasets.show import main as show_main
from engine.data.data_manager import read_image
from experiments import export, predict
from experiments.trained_model import load_run, eval_transform

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


def flags(names):
    return [arg for name in names for arg in ("--classname", name)]


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
    lines = predictions(["--model-dir", out, "--classnames-file", str(names_file), "--topk", "3",
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

    table = list(csv.reader(io.StringIO(predictions(["--model-dir", out, "--classname", "cat", "--classname", "dog",
                                                     "--format", "csv", os.path.join(root, "blue_sky", "1.png")],
                                                    capsys))))
    assert table[0] == ["path", "class_1", "prob_1", "class_2", "prob_2"] and len(table) == 2
    assert abs(float(table[1][2]) + float(table[1][4]) - 1) < 1e-5


def test_unreadable_input_is_reported_and_skipped(run, capsys):
    root, out = run
    code = predict.main(["--model-dir", out, "--classname", "a", "--classname", "b", "--no-progress",
                         os.path.join(root, "gold")])
    captured = capsys.readouterr()
    assert code == 3 and "broken.jpg" in captured.err and len(captured.out.splitlines()) == 10


def test_zero_shot_prediction(run, capsys):
    root, _ = run
    path = os.path.join(root, "green_leaf", "3.png")
    record = json.loads(predictions(["--trainer", "ZeroshotCLIP", "--backbone", "toyclip", *flags(NEW_NAMES),
                                     "--topk", "5", path], capsys))
    model = create_toyclip()
    from clip.toyclip import image_transform, tokenizer

    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer()([f"a photo of a {c}." for c in NEW_NAMES])), dim=-1)
        img = F.normalize(model.encode_image(image_transform()(Image.open(path).convert("RGB"))[None]), dim=-1)
        probs = (model.logit_scale.exp() * img @ text.T).softmax(-1)[0]
    assert dict(record["topk"]) == pytest.approx({c: float(p) for c, p in zip(NEW_NAMES, probs)}, abs=1e-5)


def test_export_text_features_for_plain_open_clip(run, tmp_path):
    import open_clip

    root, out = run
    target = str(tmp_path / "coop.pt")
    assert export.main([out, "--out", target, *flags(NEW_NAMES)]) == 0
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
    assert art["visual_sha256"] == export.weights_sha256(trainer.clip_model.model.visual)
    model = open_clip.CLIP(**art["open_clip"]["model_cfg"])  # the carried image encoder is toyclip's
    model.visual.load_state_dict(art["open_clip"]["visual"])
    assert all(torch.equal(a, b) for a, b in zip(model.visual.state_dict().values(),
                                                 create_toyclip().visual.state_dict().values()))


def test_export_prompts_serves_tools_predict(run, capsys, tmp_path):
    root, out = run
    target = str(tmp_path / "coop_prompts.pt")
    assert export.main([out, "--out", target, "--kind", "prompts", "--classname", "x", "--classname", "y"]) == 0
    art = torch.load(target, weights_only=True)
    assert art["kind"] == "prompts" and set(art["modules"]) == {"prompt_learner"} and "TRAINER" in art["config"]
    image = os.path.join(root, "red_ball", "2.png")
    args = [*flags(NEW_NAMES), "--topk", "5", image]
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


def readme_snippet() -> str:
    text = open(os.path.join(REPO, "README.md")).read().split("<!-- export-snippet -->")[1]
    return text.split("```python\n")[1].split("```")[0]


def trainer_probs(out, image_path):
    trainer = load_run(out, NEW_NAMES)
    with torch.no_grad():
        trainer.before_test()
        return trainer.model_inference(eval_transform(trainer)(read_image(image_path))[None]).softmax(-1)[0]


def test_readme_export_snippet(run, tmp_path, monkeypatch, capsys):
    """The README's open_clip snippet, run as written (nothing patched) on an export of the toyclip run: toyclip has
    no open_clip name, so the export carries its architecture and image encoder, and tools.export says so."""
    root, out = run
    monkeypatch.chdir(tmp_path)
    assert export.main([out, "--out", "photos_coop.pt", *flags(NEW_NAMES)]) == 0
    assert "carries its architecture and image-encoder weights" in capsys.readouterr().err
    Image.open(os.path.join(root, "green_leaf", "4.png")).save("fox.jpg", quality=95)
    exec(compile(readme_snippet(), "README.md", "exec"), {})
    name, prob = capsys.readouterr().out.rsplit(" ", 1)
    probs = trainer_probs(out, "fox.jpg")
    assert name == NEW_NAMES[int(probs.argmax())] and abs(float(prob) - float(probs.max())) < 1e-5


def noisy_visual(model, n=3, scale=1e-2):
    """``model`` with Gaussian noise added to its first ``n`` floating image-tower tensors (sorted by name)."""
    state = model.visual.state_dict()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name in sorted(k for k, v in state.items() if v.is_floating_point())[:n]:
            state[name].add_(scale * torch.randn(state[name].shape, generator=generator))
    return model


@pytest.mark.parametrize("source,noise", [("by name", False), ("by name", True), ("carried", True)])
def test_readme_export_snippet_checks_the_image_encoder(run, tmp_path, monkeypatch, capsys, source, noise):
    """The snippet's digest check: open_clip building a public model by name (replaced here by toyclip, as no
    weights can be fetched offline) serves the export when its weights are the exported ones, and noise in three
    image-tower tensors, whether fetched by name or carried in the file, stops it with its error."""
    import open_clip
    from clip.toyclip import image_transform

    root, out = run
    monkeypatch.chdir(tmp_path)
    assert export.main([out, "--out", "photos_coop.pt", *flags(NEW_NAMES)]) == 0
    Image.open(os.path.join(root, "blue_sky", "1.png")).save("fox.jpg", quality=95)
    art = torch.load("photos_coop.pt", weights_only=True)
    model = noisy_visual(create_toyclip()) if noise else create_toyclip()
    if source == "by name":
        art["open_clip"] = {"arch": "ViT-B-16", "pretrained": "openai"}
        monkeypatch.setattr(open_clip, "create_model_and_transforms",
                            lambda arch, pretrained: (model, None, image_transform()))
    else:
        art["open_clip"]["visual"] = model.visual.state_dict()
    torch.save(art, "photos_coop.pt")
    capsys.readouterr()
    if noise:
        with pytest.raises(SystemExit, match="not the ones photos_coop.pt was exported with"):
            exec(compile(readme_snippet(), "README.md", "exec"), {})
        assert capsys.readouterr().out == ""
    else:
        exec(compile(readme_snippet(), "README.md", "exec"), {})
        name, _ = capsys.readouterr().out.rsplit(" ", 1)
        assert name == NEW_NAMES[int(trainer_probs(out, "fox.jpg").argmax())]


def test_predict_refuses_an_export_with_other_backbone_weights(run, tmp_path, monkeypatch, capsys):
    """A prompts export is served only with the backbone weights it was made with: a toyclip weights file with noise
    in three image-tower tensors is refused with one line and exit status 2, nothing predicted."""
    import clip.toyclip as toyclip

    root, out = run
    target = str(tmp_path / "coop_prompts.pt")
    assert export.main([out, "--out", target, "--kind", "prompts"]) == 0
    art = torch.load(target, weights_only=True)
    assert art["backbone_sha256"] == export.weights_sha256(create_toyclip())
    assert art["visual_sha256"] == export.weights_sha256(create_toyclip().visual)

    noisy = torch.load(toyclip.DEFAULT_PATH, weights_only=True)
    visual = noisy_visual(create_toyclip()).visual.state_dict()
    for name in sorted(k for k, v in visual.items() if v.is_floating_point())[:3]:
        noisy["state_dict"][f"visual.{name}"] = visual[name].half()
    torch.save(noisy, tmp_path / "toyclip_noisy.pt")
    monkeypatch.setattr(toyclip, "DEFAULT_PATH", tmp_path / "toyclip_noisy.pt")
    capsys.readouterr()
    code = predict.main(["--model-dir", target, "--no-progress", os.path.join(root, "red_ball", "1.png")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and "other weights" in captured.err


def test_predict_takes_class_names_from_an_export(run, tmp_path, capsys):
    """``--model-dir EXPORT.pt`` without class names classifies under the names stored in the export."""
    root, out = run
    target = str(tmp_path / "coop_prompts.pt")
    assert export.main([out, "--out", target, "--kind", "prompts", *flags(NEW_NAMES[:3])]) == 0
    folder = os.path.join(root, "green_leaf")
    stored = predictions(["--model-dir", target, "--topk", "3", folder], capsys)
    assert stored == predictions(["--model-dir", out, *flags(NEW_NAMES[:3]), "--topk", "3", folder], capsys)
    assert {name for line in stored.splitlines() for name, _ in json.loads(line)["topk"]} == set(NEW_NAMES[:3])


def test_class_names_and_inputs_cannot_swallow_each_other(run, tmp_path, capsys):
    """The same predictions whatever the order of names and inputs; every image of the folder is classified."""
    root, out = run
    folder, image = os.path.join(root, "red_ball"), os.path.join(root, "gold", "1.png")
    names = flags(["red fox", "arctic fox", "grey wolf"])
    orders = [[*names, folder, image], [folder, *names, image], [names[0], names[1], folder, *names[2:], image],
              [*names, "--input", folder, "--input", image], [folder, "--topk", "3", image, *names]]
    outputs = [predictions(["--model-dir", out, "--topk", "3", *order], capsys) for order in orders]
    assert all(o == outputs[0] for o in outputs)
    records = [json.loads(line) for line in outputs[0].splitlines()]
    assert len(records) == 11 and records[-1]["path"] == image
    assert all({n for n, _ in r["topk"]} == {"red fox", "arctic fox", "grey wolf"} for r in records)


@pytest.mark.parametrize("argv,message", [
    (["--classname", "{folder}", "{image}"], "is an existing file or folder"),
    (["--classname", "", "--classname", "cat", "{image}"], "--classname is empty"),
    (["--classname", "  ", "--classname", "cat", "{image}"], "--classname is empty"),
    (["--classnames", "red fox", "arctic fox", "{folder}"], "--classnames was replaced"),
    (["--classname", "cat", "--classname", "dog", "--opts", "TEST.FEATURE_CACHE", "False", "{folder}"],
     "'{folder}' is not a config key"),
    (["--classname", "cat", "{image}", "--opts", "TEST.FEATURE_CACHE"], "'TEST.FEATURE_CACHE' has no value"),
    (["--classname", "cat", "--opts", "{folder}", "x"], "'{folder}' is not a config key"),
    (["--classname", "cat", "--classname", "dog"], "No images given"),
    (["--classnames-file", "{missing}", "{image}"], "no such file"),
])
def test_predict_refuses_names_that_are_not_names(run, tmp_path, capsys, argv, message):
    """Empty names, a path given as a name, the replaced --classnames, inputs after --opts: one line, exit 2."""
    root, out = run
    subs = {"folder": os.path.join(root, "red_ball"), "image": os.path.join(root, "gold", "1.png"),
            "missing": str(tmp_path / "names.txt")}
    code = predict.main(["--model-dir", out, "--no-progress", *[a.format(**subs) for a in argv]])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and message.format(**subs) in captured.err


def test_export_refuses_a_path_as_class_name(run, tmp_path, capsys):
    root, out = run
    target = tmp_path / "x.pt"
    assert export.main([out, "--out", str(target), "--classname", "cat", "--classname", root]) == 2
    assert "is an existing file or folder" in capsys.readouterr().err and not target.exists()


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory):
    """Two good images around a real decompression bomb: a 20000 x 20000 1-bit PNG (about 48 KB, 4e8 pixels, over
    PIL's 2 x MAX_IMAGE_PIXELS, so ``Image.open`` raises ``DecompressionBombError``)."""
    folder = tmp_path_factory.mktemp("bomb")
    for name in ("a.png", "c.png"):
        Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / name)
    Image.new("1", (20000, 20000)).save(folder / "b_bomb.png")
    assert (folder / "b_bomb.png").stat().st_size < 100_000
    assert 20000 * 20000 > 2 * Image.MAX_IMAGE_PIXELS
    return str(folder)


def test_a_decompression_bomb_is_skipped_and_the_other_images_are_kept(run, bomb_folder, capsys):
    root, out = run
    code = predict.main(["--model-dir", out, "--classname", "cat", "--classname", "dog", "--no-progress",
                         "--batch-size", "3", bomb_folder])
    captured = capsys.readouterr()
    paths = [json.loads(line)["path"] for line in captured.out.splitlines()]
    assert code == 3 and [os.path.basename(p) for p in paths] == ["a.png", "c.png"]
    assert "skipped" in captured.err and "b_bomb.png" in captured.err and "Traceback" not in captured.err


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
    assert export.main(["--trainer", "ZeroshotCLIP", "--backbone", "toyclip", *flags(NEW_NAMES),
                        "--out", target]) == 0
    art = torch.load(target, weights_only=True)
    from clip.toyclip import tokenizer

    model = create_toyclip()
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer()([f"a photo of a {c}." for c in NEW_NAMES])), dim=-1)
    assert art["kind"] == "text_features" and torch.allclose(art["text_features"], text, atol=1e-6)
    assert art["logit_scale"] == pytest.approx(float(model.logit_scale.detach().exp()))


def test_export_says_how_plain_open_clip_builds_each_backbone(tmp_path):
    """Public names are built by name; toyclip, ``random:`` and ``ARCH:/local/file`` backbones carry the architecture
    and image encoder; a checkpoint file gets the loader line that replaces the snippet's ``create_model...``."""
    import open_clip

    model, weights = create_toyclip(), tmp_path / "weights.pt"
    weights.write_bytes(b"")
    assert export.open_clip_recipe("ViT-B/16", model) == {"arch": "ViT-B-16", "pretrained": "openai"}
    assert export.open_clip_recipe("ViT-B-32:laion2b_s34b_b79k", model) == {"arch": "ViT-B-32",
                                                                           "pretrained": "laion2b_s34b_b79k"}
    for name, config in [("toyclip", TOYCLIP_CONFIG), ("random:ViT-B-32", open_clip.get_model_config("ViT-B-32")),
                         (f"ViT-B-32:{weights}", open_clip.get_model_config("ViT-B-32"))]:
        recipe = export.open_clip_recipe(name, model)
        assert recipe["model_cfg"] == config and recipe["visual"].keys() == model.visual.state_dict().keys()
    assert export.open_clip_recipe(str(weights), model) is None
    note = export.serving_note({"kind": "text_features", "open_clip": None, "backbone": str(weights)}, "x.pt")
    assert f"open_clip.load_openai_model('{weights}')" in note
