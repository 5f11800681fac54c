"""tools.plots: each figure kind drawn from generated run folders (results.json in the trainer's schema) and checked
structurally: points and series, error bars equal to the seeds' std, axis limits around the data, HM iso-lines,
legend clear of the title, labels that do not collide, byte-identical files on re-render."""
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from experiments import base2new_plot, plots
from tools import plots as plots_cli
from experiments.figure_style import figure_style
from experiments.results import Reported, ResultsError, harmonic_mean, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = (1, 2, 3)
DATASETS = {"dtd": "DescribableTextures", "eurosat": "EuroSAT"}


def write_result(root: Path, rel: str, accuracy: float, **fields) -> Path:
    """A run folder with results.json as engine/trainer.py writes it (the fields experiments.results reads)."""
    run = root / rel
    run.mkdir(parents=True)
    record = {"schema_version": 1, "metrics": {"accuracy": accuracy}, "num_shots": 16, "split": "test", **fields}
    (run / "results.json").write_text(json.dumps(record))
    return run


def accuracy(*key) -> float:
    """A deterministic, irregular accuracy per (method, dataset, role, seed), between 40 and 95."""
    h = sum((i + 1) * ord(c) for i, c in enumerate("|".join(map(str, key))))
    return 40.0 + (h * 7919 % 5500) / 100.0


def write_base2new(root: Path, trainers, datasets, seeds=SEEDS, backbone="ViT-B/16") -> dict:
    """Base-to-new run folders (experiments.protocols layout); returns {(trainer, dataset name, role): {seed: acc}}."""
    values = {}
    for trainer in trainers:
        for stem, name in datasets.items():
            for seed in seeds:
                tail = f"{stem}/shots_16/{trainer}/cfg/seed{seed}"
                for phase, role in (("train_base", "base"), ("test_new", "new")):
                    acc = accuracy(trainer, stem, role, seed)
                    values.setdefault((trainer, name, role), {})[seed] = acc
                    write_result(root, f"base2new/{phase}/{tail}", acc, trainer=trainer, dataset=name, seed=seed,
                                 subsample_classes=role, backbone=backbone)
    return values


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    values = write_base2new(root, ("ZeroshotCLIP", "CoOp", "MaPLe"), DATASETS)
    for trainer in ("CoOp", "MaPLe"):
        for stem, name in DATASETS.items():
            for seed in SEEDS:
                for k in (1, 4, 16):
                    write_result(root, f"fewshot/{stem}/{trainer}/cfg_{k}shots/seed{seed}",
                                 accuracy(trainer, stem, k, seed), trainer=trainer, dataset=name, seed=seed,
                                 backbone="ViT-B/16")
    for stem, name in DATASETS.items():
        write_result(root, f"zeroshot/{stem}/ZeroshotCLIP/cfg/seed1", accuracy("zs", stem), trainer="ZeroshotCLIP",
                     dataset=name, seed=1, backbone="ViT-B/16")
    return root, values


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def errorbars(ax) -> dict:
    """{label: (x, y, x half-length, y half-length)} of the axes' error-bar containers."""
    out = {}
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            line = c.lines[0]
            x, y = float(line.get_xdata()[0]), float(line.get_ydata()[0])
            halves = []
            for coll in c.lines[2]:
                (p0, p1), = [np.asarray(s) for s in coll.get_segments()]
                halves.append(float(np.linalg.norm(p1 - p0)) / 2)
            out[c.get_label()] = (x, y, *halves)
    return out


def draw(summary, fn, *args):
    with figure_style():
        fig = fn(summary, *args)
        fig.canvas.draw()
        return fig


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def check_legend_clear_of_title(fig):
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    title = fig._suptitle.get_window_extent(renderer)
    assert not overlaps(legend, title)
    for ax in fig.axes:
        if ax.axison:
            assert not overlaps(legend, ax.get_window_extent(renderer))
            if ax.get_title():
                assert not overlaps(title, ax.title.get_window_extent(renderer))


# ---- the trade-off scatter -------------------------------------------------------------------------------------

def test_tradeoff_points_errorbars_limits(runs):
    tree, values = runs
    fig = draw(summarize(tree, ["base2new"]), base2new_plot.draw_tradeoff)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["Average over 2 datasets", "DescribableTextures", "EuroSAT"]
    for ax in panels[1:]:
        bars = errorbars(ax)
        assert sorted(bars) == ["CoOp", "MaPLe", "ZeroshotCLIP"]
        for trainer, (x, y, xerr, yerr) in bars.items():
            base = list(values[(trainer, ax.get_title(), "base")].values())
            new = list(values[(trainer, ax.get_title(), "new")].values())
            assert (x, y) == pytest.approx((np.mean(base), np.mean(new)))
            assert (xerr, yerr) == pytest.approx((np.std(base), np.std(new)))  # population std, as experiments.results
            assert xerr > 0.1 and yerr > 0.1
            x0, x1 = ax.get_xlim()
            y0, y1 = ax.get_ylim()
            assert x0 + 0.5 <= x - xerr and x + xerr <= x1 - 0.5 and y0 + 0.5 <= y - yerr and y + yerr <= y1 - 0.5
    average = errorbars(panels[0])
    for trainer, (x, y, xerr, yerr) in average.items():
        means = [np.mean(list(values[(trainer, d, "base")].values())) for d in DATASETS.values()]
        assert x == pytest.approx(np.mean(means)) and xerr == 0  # a mean over datasets: no seed error bar
    refs = [ln for ax in panels for ln in ax.lines if ln.get_gid() == "zero-shot-ref"]
    assert len(refs) == 2 * len(panels)  # a cross through zero-shot CLIP in every panel
    check_legend_clear_of_title(fig)


def test_hm_iso_lines_have_the_right_levels(runs):
    tree, _ = runs
    fig = draw(summarize(tree, ["base2new"]), base2new_plot.draw_tradeoff)
    for ax in [a for a in fig.axes if a.axison]:
        iso = [ln for ln in ax.lines if (ln.get_gid() or "").startswith(base2new_plot.ISO_GID)]
        levels = sorted(float(ln.get_gid().rsplit("-", 1)[1]) for ln in iso)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        lo, hi = harmonic_mean(x0, y0), harmonic_mean(x1, y1)
        step = levels[1] - levels[0]
        assert len(levels) >= 2 and all(lo < h < hi for h in levels)
        assert np.allclose(np.diff(levels), step) and step in (1, 2, 2.5, 5, 10, 20, 25)
        assert levels[0] - step <= lo and levels[-1] + step >= hi  # no round level in the panel is missing
        for ln, level in zip(sorted(iso, key=lambda ln: float(ln.get_gid().rsplit("-", 1)[1])), levels):
            x, y = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
            assert np.allclose(2 * x * y / (x + y), level)


def test_point_labels_do_not_collide(tmp_path):
    root = tmp_path / "runs"
    trainers = ("ZeroshotCLIP", "CoOp", "CoCoOp", "MaPLe", "IVLP", "VPT", "LAMM", "APLe")
    write_base2new(root, trainers, {"eurosat": "EuroSAT"})
    fig = draw(summarize(root, ["base2new"]), base2new_plot.draw_tradeoff)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text() in trainers]
    assert len(labels) >= len(trainers) // 2
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the texts (leader lines may cross)
    frame = ax.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        assert not any(overlaps(a, b) for b in boxes[i + 1:])
    assert "EuroSAT" in fig._suptitle.get_text() and "ViT-B/16" in fig._suptitle.get_text()
    assert "seeds 1 2 3" in fig._suptitle.get_text()
    check_legend_clear_of_title(fig)


def test_eleven_datasets_grid_and_published_overlay(tmp_path):
    from experiments.protocols import BASE2NEW_DATASETS, dataset_name

    root = tmp_path / "runs"
    write_base2new(root, ("ZeroshotCLIP", "CoOp"), {s: dataset_name(s) for s in BASE2NEW_DATASETS}, seeds=(1, 2))
    summary = summarize(root, ["base2new"])
    Reported().attach(summary)
    fig = draw(summary, base2new_plot.draw_tradeoff)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 12 and len(fig.axes) == 12  # 3 rows of 4
    assert panels[0].get_title() == "Average over 11 datasets"
    for ax in panels:
        hollow = [ln for ln in ax.lines if ln.get_gid() == "reported"]
        assert len(hollow) == 2 and all(ln.get_markerfacecolor() == "none" for ln in hollow)
        coop = next(r for r in summary.rows["base2new"] if r.trainer == "CoOp"
                    and r.dataset == ("average" if ax is panels[0] else ax.get_title()))
        published = (coop.reported["base"]["value"], coop.reported["new"]["value"])
        assert any((ln.get_xdata()[0], ln.get_ydata()[0]) == published for ln in hollow)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x0 < published[0] < x1 and y0 < published[1] < y1
    assert "published (hollow)" in [t.get_text() for t in fig.legends[0].get_texts()]
    check_legend_clear_of_title(fig)


# ---- the bar view, few-shot, curves ----------------------------------------------------------------------------

def test_bar_view_zoomed_with_errorbars(runs):
    tree, values = runs
    fig = draw(summarize(tree, ["base2new"]), base2new_plot.draw_bars)
    base_ax = fig.axes[0]
    bars = [c for c in base_ax.containers if c.__class__.__name__ == "BarContainer"]
    assert [c.get_label() for c in bars] == ["ZeroshotCLIP", "CoOp", "MaPLe"]
    assert all(len(c.patches) == 3 for c in bars)  # Average + 2 datasets
    heights = [p.get_height() for c in bars for p in c.patches]
    lo, hi = base_ax.get_ylim()
    assert lo > 0 and lo < min(heights) - 1 and hi > max(heights) + 1  # zoomed, not from 0
    coop = [c for c in base_ax.containers if isinstance(c, ErrorbarContainer)][1]
    centre = bars[1].patches[1].get_x() + bars[1].patches[1].get_width() / 2  # CoOp on DescribableTextures
    drawn = [seg for seg in map(np.asarray, coop.lines[2][0].get_segments()) if len(seg)]
    segments = {round(float(seg[0][0]), 6): seg for seg in drawn}
    assert len(segments) == 2  # the two datasets; the Average (a mean over datasets) has no seed error bar
    (p0, p1) = segments[round(centre, 6)]
    seeds = list(values[("CoOp", "DescribableTextures", "base")].values())
    assert np.linalg.norm(p1 - p0) / 2 == pytest.approx(np.std(seeds))
    check_legend_clear_of_title(fig)


def test_fewshot_lines_bands_and_zero_shot(runs):
    tree, _ = runs
    summary = summarize(tree, ["fewshot", "zeroshot"])
    fig = draw(summary, plots.draw_fewshot)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["Average over 2 datasets", "DescribableTextures", "EuroSAT"]
    dtd = panels[1]
    series = [ln for ln in dtd.lines if ln.get_label() in ("CoOp", "MaPLe")]
    assert [ln.get_label() for ln in series] == ["CoOp", "MaPLe"] and all(len(ln.get_xdata()) == 3 for ln in series)
    bands = [c for c in dtd.collections if c.get_gid() == "std-band"]
    assert len(bands) == 2
    verts = bands[0].get_paths()[0].vertices
    for k in (1, 4, 16):
        accs = [accuracy("CoOp", "dtd", k, s) for s in SEEDS]
        ys = verts[np.isclose(verts[:, 0], k), 1]
        assert (ys.min(), ys.max()) == pytest.approx((np.mean(accs) - np.std(accs), np.mean(accs) + np.std(accs)))
    zs = [ln for ln in dtd.lines if ln.get_gid() == "zero-shot-ref"]
    assert len(zs) == 1 and zs[0].get_ydata()[0] == pytest.approx(accuracy("zs", "dtd"))
    y0, y1 = dtd.get_ylim()
    assert y0 < ys.min() and ys.max() < y1
    check_legend_clear_of_title(fig)


def write_metrics(run: Path, loss0: float, seed: int, trainer="CoOp") -> None:
    run.mkdir(parents=True)
    lines = [{"epoch": e, "lr": 0.002 * (0.5 ** e), "loss": loss0 / e + 0.1 * seed, "acc": 40.0 + e + seed,
              "time_s": 1.0} for e in range(1, 5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (run / "results.json").write_text(json.dumps({"trainer": trainer, "dataset": "EuroSAT", "backbone": "RN50",
                                                  "seed": seed, "metrics": {"accuracy": 50.0}}))


def test_curves_group_seeds_into_mean_and_band(tmp_path):
    runs = []
    for seed in SEEDS:
        write_metrics(tmp_path / f"coop{seed}", 2.0, seed)
        runs.append(tmp_path / f"coop{seed}")
    write_metrics(tmp_path / "maple", 3.0, 1, trainer="MaPLe")
    fig = draw(None, lambda _: plots.draw_curves(runs + [tmp_path / "maple"]))
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["loss (training)", "accuracy on training batches (%)", "learning rate"]
    loss_ax = fig.axes[0]
    assert [ln.get_label() for ln in loss_ax.lines] == ["CoOp (3 runs)", "MaPLe"]
    assert np.allclose(loss_ax.lines[0].get_ydata(), [2.0 / e + 0.2 for e in range(1, 5)])
    band = [c for c in loss_ax.collections if c.get_gid() == "std-band"]
    verts = band[0].get_paths()[0].vertices
    assert np.isclose(verts[:, 1].max() - 2.0 - 0.2, np.std([0.1, 0.2, 0.3]))
    suptitle = fig._suptitle.get_text()
    assert "EuroSAT" in suptitle and "RN50" in suptitle and "seeds 1 2 3" in suptitle
    check_legend_clear_of_title(fig)


# ---- files, determinism, command line --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_rerender_is_byte_identical(runs, tmp_path, suffix):
    tree, _ = runs
    summary = summarize(tree, ["base2new"])
    a = plots.plot_base2new(summary, tmp_path / f"a{suffix}")
    b = plots.plot_base2new(summarize(tree, ["base2new"]), tmp_path / f"b{suffix}")
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 1000
    if suffix == ".png":
        assert is_png(a) and b"Matplotlib" not in a.read_bytes()
    if suffix == ".pdf":
        assert b"CreationDate" not in a.read_bytes()


def test_cli_and_clear_errors(runs, tmp_path, capsys):
    tree, _ = runs
    assert plots_cli.main(["base2new", str(tree), "--out", str(tmp_path / "cli.png")]) == 0
    assert is_png(tmp_path / "cli.png")
    assert plots_cli.main(["base2new", str(tree), "--out", str(tmp_path / "bars.png"), "--view", "bars",
                       "--compare", "reported"]) == 0
    assert plots_cli.main(["fewshot", str(tree), "--out", str(tmp_path / "fs.pdf")]) == 0
    assert (tmp_path / "fs.pdf").read_bytes()[:5] == b"%PDF-"
    assert plots_cli.main(["curves", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c.png")]) == 2
    assert "expected" in capsys.readouterr().err and not (tmp_path / "c.png").exists()
    with pytest.raises(ResultsError, match=r"\.png, \.pdf or \.svg"):
        plots.plot_base2new(summarize(tree, ["base2new"]), tmp_path / "x.jpg")
    with pytest.raises(ResultsError, match="No fewshot results"):
        plots.plot_fewshot(summarize(tree, ["base2new"]), tmp_path / "y.png")
    with pytest.raises(ResultsError, match="one label per run"):
        plots.plot_curves([tmp_path], tmp_path / "z.png", labels=["a", "b"])
