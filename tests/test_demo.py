"""The main job, shortened: base-to-new on the toy benchmark with the tiny pretrained CLIP, zero-shot CLIP and CoOp.

What must hold for the pipeline to be alive: zero-shot transfer exists (above chance on base and new classes), CoOp
trains (its training loss falls), both halves are evaluated, and the table and the figure are written. On the demo's
default world, ToyTinted, CoOp must also show the trade-off the real benchmarks show (docs/TOY.md): its context raises
base accuracy above zero-shot's and lowers new-class accuracy below it, and the demo's table marks that. Every
number is checked with a margin: trained accuracies are exact only on the CPU that made them.
"""
import glob
import json
import os

import torch

from clip import toyclip
from experiments import demo


def _accuracies(output):
    acc = {}
    for path in glob.glob(os.path.join(output, "**", "results.json"), recursive=True):
        r = json.load(open(path))
        acc[(r["trainer"], r["subsample_classes"])] = (r["metrics"]["accuracy"], r["num_classes"])
    return acc


def test_toy_base_to_new_demo(tmp_path):
    out = str(tmp_path / "out")
    code = demo.main(["--trainers", "ZeroshotCLIP", "CoOp", "--seeds", "1",
                      "--root", str(tmp_path / "data"), "--output", out, "--jobs", "2"])
    assert code == 0
    acc = _accuracies(out)
    zs_base, n_base = acc[("ZeroshotCLIP", "base")]
    zs_new, n_new = acc[("ZeroshotCLIP", "new")]
    assert zs_base > 2 * 100 / n_base and zs_new > 2 * 100 / n_new  # clearly above chance
    # train.py's ZeroshotCLIP (dataset files, test transform, template) reproduces the checkpoint's recorded numbers,
    # within 2 of the 450 test images per half (measured equal under the default, avx2 and avx512 kernels)
    recorded = torch.load(toyclip.DEFAULT_PATH, weights_only=True)["meta"]["zero_shot_test"]["ToyTinted"]
    assert abs(zs_base - recorded["base"]) < 0.5 and abs(zs_new - recorded["new"]) < 0.5, (zs_base, zs_new, recorded)
    coop_base, _ = acc[("CoOp", "base")]
    coop_new, _ = acc[("CoOp", "new")]
    # the trade-off with margins, never one CPU's numbers (docs/TOY.md, "Which numbers hold where"): seed 1 measured
    # +13.8 / -6.7 under ATen's default, avx2 and avx512 kernels; trained accuracies are exact only on one CPU
    assert coop_base >= zs_base + 5 and coop_new <= zs_new - 3, (coop_base, coop_new, zs_base, zs_new)
    metrics = glob.glob(os.path.join(out, "**", "CoOp", "**", "metrics.jsonl"), recursive=True)
    assert metrics, f"CoOp wrote no metrics.jsonl under {out}"
    losses = [json.loads(line)["loss"] for line in open(metrics[0])]
    assert losses[-1] < losses[0]
    table = open(os.path.join(out, "results.md")).read()
    assert "ToyTinted" in table and "CoOp" in table and "ZeroshotCLIP" in table
    coop_delta = next(line for line in table.splitlines()
                      if line.startswith("| ToyTinted | CoOp") and "trade-off" in line)
    assert f"{coop_base - zs_base:+.2f}" in coop_delta and f"{coop_new - zs_new:+.2f}" in coop_delta
    figure = os.path.join(out, "results.png")
    assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"the demo wrote no figure at {figure}"
