"""tools.plots: each figure kind is written as a real PNG/PDF from synthetic run trees."""
import json
from pathlib import Path

import pytest

from tools import plots
from tools.results import ResultsError, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_result(root: Path, rel: str, accuracy: float, **fields) -> Path:
    run = root / rel
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"metrics": {"accuracy": accuracy}, **fields}))
    return run


@pytest.fixture
def tree(tmp_path):
    for trainer in ("CoOp", "MaPLe"):
        for stem, name in (("dtd", "DescribableTextures"), ("eurosat", "EuroSAT")):
            for seed in (1, 2):
                tail = f"{stem}/shots_16/{trainer}/cfg/seed{seed}"
                write_result(tmp_path, f"base2new/train_base/{tail}", 80.0 + seed, trainer=trainer, dataset=name,
                             seed=seed, subsample_classes="base")
                write_result(tmp_path, f"base2new/test_new/{tail}", 60.0 + seed, trainer=trainer, dataset=name,
                             seed=seed, subsample_classes="new")
            for k in (1, 4, 16):
                write_result(tmp_path, f"fewshot/{stem}/{trainer}/cfg_{k}shots/seed1", 50.0 + k, trainer=trainer,
                             dataset=name, seed=1)
    return tmp_path


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_base2new_bars(tree, tmp_path):
    out = plots.plot_base2new(summarize(tree, ["base2new"]), tmp_path / "figs" / "b2n.png")
    assert is_png(out)


def test_fewshot_curves_pdf(tree, tmp_path):
    out = plots.plot_fewshot(summarize(tree, ["fewshot"]), tmp_path / "fewshot.pdf")
    assert out.read_bytes()[:5] == b"%PDF-" and out.stat().st_size > 1000


def test_training_curves_from_metrics_jsonl(tmp_path):
    runs = []
    for name, loss0 in (("a", 2.0), ("b", 3.0)):
        run = tmp_path / name
        run.mkdir()
        lines = [{"epoch": e, "lr": 0.002 * (0.5 ** e), "loss": loss0 / e, "acc": 40.0 + e, "time_s": 1.0,
                  "loss_kd": 0.1 * e} for e in range(1, 5)]
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        runs.append(run)
    assert is_png(plots.plot_curves(runs, tmp_path / "curves.png", labels=["a", "b"]))


def test_cli_and_clear_errors(tree, tmp_path, capsys):
    assert plots.main(["base2new", str(tree), "--out", str(tmp_path / "cli.png")]) == 0
    assert is_png(tmp_path / "cli.png")
    assert plots.main(["curves", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c.png")]) == 2
    assert "expected" in capsys.readouterr().err and not (tmp_path / "c.png").exists()
    with pytest.raises(ResultsError, match=".png or .pdf"):
        plots.plot_base2new(summarize(tree, ["base2new"]), tmp_path / "x.jpg")
    with pytest.raises(ResultsError, match="No fewshot results"):
        plots.plot_fewshot(summarize(tree, ["base2new"]), tmp_path / "y.png")
