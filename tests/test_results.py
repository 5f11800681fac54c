"""experiments.results: reading run trees, seed averaging, HM arithmetic, tables, CSV and the published-number join."""
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import results
from tools import results as results_cli
from experiments.results import Reported, Summary, harmonic_mean, log_accuracy, summarize


def write_result(root: Path, rel: str, accuracy: float, **fields) -> Path:
    run = root / rel
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"schema_version": 1, "metrics": {"accuracy": accuracy}, **fields}))
    return run


def b2n(root, trainer, stem, name, seed, base, new, config="cfg"):
    tail = f"{stem}/shots_16/{trainer}/{config}/seed{seed}"
    write_result(root, f"base2new/train_base/{tail}", base, trainer=trainer, dataset=name, seed=seed,
                 subsample_classes="base", backbone="ViT-B/16")
    write_result(root, f"base2new/test_new/{tail}", new, trainer=trainer, dataset=name, seed=seed,
                 subsample_classes="new", backbone="ViT-B/16")


# Per-seed accuracies of CoOp on two datasets: (base, new)
PETS = {1: (80.0, 60.0), 2: (82.0, 61.0), 3: (84.0, 62.0)}
DTD = {1: (90.0, 40.0), 2: (91.0, 44.0), 3: (92.0, 48.0)}


@pytest.fixture
def tree(tmp_path):
    for seed, (b, n) in PETS.items():
        b2n(tmp_path, "CoOp", "oxford_pets", "OxfordPets", seed, b, n)
    for seed, (b, n) in DTD.items():
        b2n(tmp_path, "CoOp", "dtd", "DescribableTextures", seed, b, n)
    return tmp_path


def row(summary, protocol, dataset, trainer="CoOp"):
    return next(r for r in summary.rows[protocol] if r.dataset == dataset and r.trainer == trainer)


def test_harmonic_mean_by_hand():
    assert harmonic_mean(80.0, 60.0) == pytest.approx(2 * 80 * 60 / 140)  # 68.5714...
    assert harmonic_mean(82.69, 63.22) == pytest.approx(71.66, abs=0.005)  # CoOp's published average row
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_seed_mean_std_and_hm_per_dataset(tree):
    s = summarize(tree)
    pets = row(s, "base2new", "OxfordPets")
    assert pets.cells["base"].mean == pytest.approx(82.0) and pets.cells["new"].mean == pytest.approx(61.0)
    assert pets.cells["base"].std == pytest.approx(math.sqrt(8 / 3))  # population std of 80, 82, 84
    assert pets.cells["base"].seeds == (1, 2, 3)
    assert pets.cells["hm"].mean == pytest.approx(2 * 82 * 61 / (82 + 61))
    assert s.warnings == []


def test_average_row_is_hm_of_averages_not_average_of_hms(tree):
    avg = row(summarize(tree), "base2new", results.AVERAGE)
    base, new = (82.0 + 91.0) / 2, (61.0 + 44.0) / 2
    assert avg.cells["base"].mean == pytest.approx(base) and avg.cells["new"].mean == pytest.approx(new)
    assert avg.cells["hm"].mean == pytest.approx(2 * base * new / (base + new))  # 62.9489...
    mean_of_hms = (harmonic_mean(82, 61) + harmonic_mean(91, 44)) / 2  # 64.5..., what the papers do not do
    assert abs(avg.cells["hm"].mean - mean_of_hms) > 0.5
    assert avg.n_datasets == 2


def test_missing_seeds_are_counted_and_warned(tree):
    for path in tree.glob("base2new/test_new/dtd/*/*/*/seed3"):
        (path / "results.json").unlink()
    s = summarize(tree)
    dtd = row(s, "base2new", "DescribableTextures")
    assert dtd.cells["new"].seeds == (1, 2) and dtd.cells["new"].mean == pytest.approx(42.0)
    assert any("DescribableTextures new: missing seed(s) 3 (have 1, 2)" in w for w in s.warnings)
    table = results.report(s, "terminal")
    assert "2/3" in table


def test_mixed_protocols_and_shared_xd_source(tmp_path):
    b2n(tmp_path, "MaPLe", "eurosat", "EuroSAT", 1, 95.0, 70.0)
    for k, cfg, acc in ((1, "vit_b16_ep50", 60.0), (2, "vit_b16_ep100", 65.0), (16, "vit_b16", 75.0)):
        write_result(tmp_path, f"fewshot/eurosat/CoOp/{cfg}_{k}shots/seed1", acc, trainer="CoOp", dataset="EuroSAT",
                     seed=1, subsample_classes="all")
    src = "shots_16/CoOp/vit_b16_ep50_ctxv1/seed1"
    write_result(tmp_path, f"xd/train/imagenet/{src}", 71.0, trainer="CoOp", dataset="ImageNet", seed=1)
    write_result(tmp_path, f"xd/test/caltech101/{src}", 93.0, trainer="CoOp", dataset="Caltech101", seed=1)
    write_result(tmp_path, f"xd/test/dtd/{src}", 41.0, trainer="CoOp", dataset="DescribableTextures", seed=1)
    write_result(tmp_path, f"dg/test/imagenetv2/{src}", 64.0, trainer="CoOp", dataset="ImageNetV2", seed=1)
    write_result(tmp_path, "zeroshot/eurosat/ZeroshotCLIP/vit_b16/seed1", 48.0, trainer="ZeroshotCLIP",
                 dataset="EuroSAT", seed=1)
    s = summarize(tmp_path)
    assert list(s.rows) == ["base2new", "fewshot", "xd", "dg", "zeroshot"]
    fewshot = [r for r in s.rows["fewshot"] if r.dataset == "EuroSAT"]
    assert sorted((r.shots, r.cells["acc"].mean) for r in fewshot) == [(1, 60.0), (2, 65.0), (16, 75.0)]
    assert {r.label for r in s.rows["fewshot"]} == {"CoOp"}  # the epoch-tagged configs are one method
    assert row(s, "xd", results.AVERAGE).cells["acc"].mean == pytest.approx((93.0 + 41.0) / 2)  # targets only
    assert row(s, "dg", "ImageNet").cells["acc"].mean == 71.0  # the source column comes from xd/train
    assert row(s, "dg", results.AVERAGE).cells["acc"].mean == 64.0
    assert row(s, "zeroshot", "EuroSAT", "ZeroshotCLIP").cells["acc"].mean == 48.0
    text = results.report(s, "markdown")
    for title in ("Base-to-new", "Few-shot", "Cross-dataset", "Domain generalisation", "Zero-shot"):
        assert f"### {title}" in text
    assert "| ImageNet (source)" in text


def test_imagenet_and_other_configs_of_one_method_share_a_row_label(tmp_path):
    b2n(tmp_path, "CoOp", "imagenet", "ImageNet", 1, 76.0, 67.0, config="vit_b16_ep50_ctxv1")
    b2n(tmp_path, "CoOp", "dtd", "DescribableTextures", 1, 80.0, 50.0, config="vit_b16_ctxv1")
    s = summarize(tmp_path)
    avg = row(s, "base2new", results.AVERAGE)
    assert avg.n_datasets == 2 and avg.configs == ("vit_b16_ctxv1", "vit_b16_ep50_ctxv1")
    assert {r.label for r in s.rows["base2new"]} == {"CoOp"}


def test_two_configs_of_one_trainer_are_labelled_apart(tmp_path):
    b2n(tmp_path, "CoOp", "dtd", "DescribableTextures", 1, 80.0, 50.0, config="vit_b16_ctxv1")
    b2n(tmp_path, "CoOp", "dtd", "DescribableTextures", 1, 70.0, 55.0, config="rn50")
    labels = {r.label for r in summarize(tmp_path).rows["base2new"]}
    assert labels == {"CoOp (vit_b16_ctxv1)", "CoOp (rn50)"}


def test_coop_log_fallback(tmp_path):
    run = tmp_path / "base2new/test_new/dtd/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed2"
    run.mkdir(parents=True)
    (run / "log.txt").write_text("epoch [1/10]\n* accuracy: 12.5%\n=> result\n* total: 100\n* accuracy: 55.5%\n")
    assert log_accuracy(run / "log.txt") == 55.5
    old = tmp_path / "old.txt"
    old.write_text("* accuracy: 1.0%\nFinished training\n* accuracy: 60.0%\n* accuracy: 61.25%\n")
    assert log_accuracy(old) == 61.25  # the last match after the marker
    unfinished = tmp_path / "unfinished.txt"
    unfinished.write_text("* accuracy: 30.0%\n")
    assert log_accuracy(unfinished) is None
    s = summarize(tmp_path)
    r = row(s, "base2new", "DescribableTextures", "CoCoOp")
    assert r.cells["new"].mean == 55.5 and r.cells["new"].seeds == (2,)
    assert any("only new results" in w for w in s.warnings)


def test_unfinished_log_is_skipped_with_a_warning(tmp_path):
    run = tmp_path / "fewshot/dtd/CoOp/vit_b16_4shots/seed1"
    run.mkdir(parents=True)
    (run / "log.txt").write_text("epoch [1/100]\n")
    s = summarize(tmp_path)
    assert s.rows == {} and any("unfinished run" in w for w in s.warnings)


def test_subsample_classes_decides_base_and_new_outside_the_layout(tmp_path):
    write_result(tmp_path, "my_runs/a", 81.0, trainer="CoOp", dataset="EuroSAT", seed=1, subsample_classes="base")
    write_result(tmp_path, "my_runs/b", 71.0, trainer="CoOp", dataset="EuroSAT", seed=1, subsample_classes="new")
    write_result(tmp_path, "my_runs/c", 66.0, trainer="CoOp", dataset="EuroSAT", seed=1, subsample_classes="all",
                 num_shots=4)
    s = summarize(tmp_path)
    r = row(s, "base2new", "EuroSAT")
    assert (r.cells["base"].mean, r.cells["new"].mean) == (81.0, 71.0)
    other = s.rows["other"][0]
    assert other.cells["acc"].mean == 66.0 and other.shots == 4


def test_csv_has_one_row_per_protocol_trainer_dataset(tree, tmp_path):
    write_result(tmp_path, "fewshot/dtd/CoOp/vit_b16_16shots/seed1", 70.0, trainer="CoOp",
                 dataset="DescribableTextures")
    rows = list(csv.DictReader(io.StringIO(results.report(summarize(tree), "csv"))))
    keys = [(r["protocol"], r["trainer"], r["dataset"], r["shots"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 + 1  # base2new: average + 2 datasets; fewshot: 1 dataset, no average
    pets = next(r for r in rows if r["dataset"] == "OxfordPets")
    assert float(pets["base"]) == pytest.approx(82.0) and float(pets["new"]) == pytest.approx(61.0)
    assert float(pets["hm"]) == pytest.approx(2 * 82 * 61 / 143, abs=1e-4) and pets["acc"] == ""
    assert pets["seeds"] == "1 2 3" and pets["n_seeds"] == "3"
    few = next(r for r in rows if r["protocol"] == "fewshot" and r["dataset"] != "average")
    assert float(few["acc"]) == 70.0 and few["base"] == few["hm"] == ""


REPORTED = {"schema": "test", "provenance": "made up for the test", "entries": [
    {"paper": "P1", "method": "CoOp", "setting": "base2new", "dataset": "OxfordPets", "metric": "base", "shots": 16,
     "backbone": "ViT-B/16", "value": 80.5, "provenance": "from-memory-recomputed"},
    {"paper": "P2", "method": "CoOp", "setting": "base2new", "dataset": "OxfordPets", "metric": "base", "shots": 16,
     "backbone": "ViT-B/16", "value": 81.5, "provenance": "verified-readme"},
    {"paper": "P1", "method": "CoOp", "setting": "base2new", "dataset": "OxfordPets", "metric": "new", "shots": 16,
     "backbone": "RN50", "value": 10.0, "provenance": "verified-readme"},
    {"paper": "P1", "method": "CoOp", "setting": "base2new", "dataset": "average", "metric": "hm", "shots": 16,
     "backbone": "ViT-B/16", "value": 70.0, "provenance": "verified-readme"},
]}


def test_reported_join_prefers_verified_numbers_and_matches_backbone(tree, tmp_path):
    path = tmp_path / "reported.json"
    path.write_text(json.dumps(REPORTED))
    s = summarize(tree)
    Reported(path).attach(s)
    pets = row(s, "base2new", "OxfordPets")
    assert pets.reported["base"]["value"] == 81.5 and pets.reported["base"]["paper"] == "P2"
    assert "new" not in pets.reported  # published for another backbone
    assert row(s, "base2new", results.AVERAGE).reported == {}  # 2 datasets are not the 11-dataset average
    text = results.report(s, "terminal", compare=True, reported=Reported(path))
    assert "paper [1]" in text and "[1] P2; provenance: verified-readme" in text
    assert f"{82.0 - 81.5:+.2f}" in text and "made up for the test" in text
    rows = list(csv.DictReader(io.StringIO(results.report(s, "csv", compare=True, reported=Reported(path)))))
    pets_csv = next(r for r in rows if r["dataset"] == "OxfordPets")
    assert float(pets_csv["reported_base"]) == 81.5 and float(pets_csv["diff_base"]) == pytest.approx(0.5)
    assert pets_csv["reported_source"] == "P2 (verified-readme)"


def test_reported_average_joins_a_full_benchmark(tmp_path):
    names = ["ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft",
             "SUN397", "DescribableTextures", "EuroSAT", "UCF101"]
    for i, name in enumerate(names):
        b2n(tmp_path, "CoOp", f"d{i}", name, 1, 80.0 + i, 60.0 + i)
    s = summarize(tmp_path)
    Reported().attach(s)  # the shipped file
    avg = row(s, "base2new", results.AVERAGE)
    assert avg.reported["base"]["value"] == 82.69 and avg.reported["hm"]["value"] == 71.66
    assert avg.reported["hm"]["provenance"] == "verified-readme"
    measured = np.mean(80.0 + np.arange(11))  # 85.0
    assert avg.cells["base"].mean - avg.reported["base"]["value"] == pytest.approx(measured - 82.69)


def test_shipped_reported_numbers_keep_schema_and_provenance():
    data = json.loads(results.REPORTED_FILE.read_text())
    assert data["schema"] and data["provenance"]
    allowed = {"verified-readme", "from-memory-recomputed", "read-from-figure-approx", "readme-table"}
    assert data["entries"] and all(e["provenance"] in allowed for e in data["entries"])
    assert all({"paper", "method", "setting", "dataset", "metric", "value"} <= set(e) for e in data["entries"])


def test_cli_writes_the_table_in_the_format_of_the_file(tree, tmp_path, capsys):
    out = tmp_path / "tables" / "b2n.csv"
    assert results_cli.main([str(tree), "--output", str(out)]) == 0
    assert out.read_text().startswith("protocol,trainer,method")
    assert results_cli.main([str(tree), "--format", "latex", "--compare", "reported"]) == 0
    assert "\\toprule" in capsys.readouterr().out
    assert results_cli.main([str(tmp_path / "nothing")]) == 2
    assert "No output directory" in capsys.readouterr().err


def test_summary_of_nothing_is_empty():
    s = Summary([])
    assert s.rows == {} and s.warnings == []


def test_nan_metrics_give_one_warning_naming_the_runs(tree, capsys):
    bad = tree / "base2new/test_new/dtd/shots_16/CoOp/cfg/seed2"
    (bad / "results.json").write_text(json.dumps({"metrics": {"accuracy": float("nan"), "error_rate": float("inf"),
                                                              "macro_f1": 40.0}, "subsample_classes": "new",
                                                  "trainer": "CoOp", "dataset": "DescribableTextures", "seed": 2,
                                                  "backbone": "ViT-B/16"}))
    assert "NaN" in (bad / "results.json").read_text()  # how json.dumps writes it, and what train.py would write
    s = summarize(tree)
    assert math.isnan(row(s, "base2new", "DescribableTextures").cells["new"].mean)  # shown as nan, never dropped
    nan_warnings = [w for w in s.warnings if "NaN" in w]
    assert nan_warnings == [f"1 run(s) report NaN or infinite metrics, so every mean that includes them is nan too "
                            f"(diverged training? see each run's log.txt, fix the cause, delete the run directory "
                            f"and run it again): {bad} (accuracy, error_rate)"]
    assert results_cli.main([str(tree)]) == 0
    assert capsys.readouterr().err.count("NaN or infinite") == 1


# ---- grouping by run identity: only the seed may differ between runs averaged in one row ----

def _config(seed, backbone="toyclip", lr=0.05, dataset="ToyTinted", out="x"):
    """The parts of a resolved config these tests vary (OUTPUT_DIR is not result-relevant)."""
    return {"SEED": seed, "OUTPUT_DIR": out, "DATASET": {"NAME": dataset, "NUM_SHOTS": 16},
            "MODEL": {"BACKBONE": {"NAME": backbone}}, "OPTIM": {"LR": lr}}


def identity_run(root, seed, acc, backbone="toyclip", lr=0.05, dataset="ToyTinted", changes=None):
    tail = f"toy_tinted/shots_16/CoOp/toy/seed{seed}"
    write_result(root, f"base2new/train_base/{tail}", acc, trainer="CoOp", dataset=dataset, seed=seed,
                 subsample_classes="base", backbone=backbone,
                 config=_config(seed, backbone, lr, dataset, out=f"{root}/{seed}"), config_changes=changes or [])


def test_runs_of_other_backbones_are_never_averaged_as_seeds(tmp_path, capsys):
    identity_run(tmp_path / "a", 1, 80.0, backbone="random:ViT-S-32")
    identity_run(tmp_path / "b", 2, 60.0, backbone="toyclip")
    s = summarize(tmp_path)
    rows = [r for r in s.rows["base2new"] if r.dataset == "ToyTinted"]
    assert sorted((r.backbone, r.cells["base"].mean, r.cells["base"].n) for r in rows) == [
        ("random:ViT-S-32", 80.0, 1), ("toyclip", 60.0, 1)]
    assert sorted(r.label for r in rows) == ["CoOp (random:ViT-S-32)", "CoOp (toyclip)"]
    assert any("runs differ in backbone" in w and "not averaged as seeds" in w for w in s.warnings)
    table = results.report(s, "markdown")
    assert table.splitlines()[2].replace(" ", "").endswith("|Seeds|Backbone|")
    assert any(line.startswith("| ToyTinted") and "random:ViT-S-32 |" in line for line in table.splitlines())


def test_runs_differing_in_a_setting_get_their_own_rows_naming_it(tmp_path):
    identity_run(tmp_path / "a", 1, 80.0, lr=0.05)
    identity_run(tmp_path / "a", 2, 70.0, lr=0.05)  # the same run but for the seed (and OUTPUT_DIR): one row
    identity_run(tmp_path / "b", 3, 50.0, lr=0.1)
    s = summarize(tmp_path)
    rows = {r.label: r for r in s.rows["base2new"]}
    assert set(rows) == {"CoOp (OPTIM.LR=0.05)", "CoOp (OPTIM.LR=0.1)"}
    assert rows["CoOp (OPTIM.LR=0.05)"].cells["base"].mean == 75.0
    assert rows["CoOp (OPTIM.LR=0.05)"].cells["base"].seeds == (1, 2)
    assert rows["CoOp (OPTIM.LR=0.1)"].cells["base"].seeds == (3,)
    assert any("runs differ in OPTIM.LR;" in w for w in s.warnings)


def test_runs_resumed_with_another_config_are_marked(tmp_path, capsys):
    identity_run(tmp_path / "a", 1, 80.0)
    changes = [{"resumed_after_epoch": 3, "changes": [["DATASET.NAME", "ToyTinted", "ToyShapes"]]}]
    identity_run(tmp_path / "b", 2, 40.0, dataset="ToyShapes", changes=changes)
    s = summarize(tmp_path)
    shapes = next(r for r in s.rows["base2new"] if r.dataset == "ToyShapes")
    assert shapes.label == "CoOp [config changed on resume]"
    assert any("--allow-config-change" in w and "DATASET.NAME: 'ToyTinted' -> 'ToyShapes' (after epoch 3)" in w
               for w in s.warnings)
    assert results_cli.main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "CoOp [config changed on resume]" in captured.out and "config changed on resume" in captured.err
    csv_rows = list(csv.DictReader(io.StringIO(results.report(s, "csv"))))
    assert [r["config_changes"] for r in csv_rows if r["dataset"] == "ToyShapes"] == [
        "DATASET.NAME: 'ToyTinted' -> 'ToyShapes' (after epoch 3)"]
