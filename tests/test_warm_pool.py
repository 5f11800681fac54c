"""The warm local executor (experiments/warm_pool.py): a crashed worker is replaced without losing the sweep, and warm
runs give exactly what one process per run gives."""
import json
import os
import sys

import torch

from experiments import sweep, warm_pool
from experiments.protocols import Run, Settings, expand


def fake_train(argv):
    """A stand-in for train.main in a worker: ``python train.py OUT MODE``; records its worker's pid."""
    out, mode = argv[2], argv[3]
    if mode == "crash":
        os._exit(7)  # the worker dies mid-run
    if mode == "raise":
        raise RuntimeError("asked to raise")
    os.makedirs(out, exist_ok=True)
    print(f"fake run in {os.getpid()}")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"metrics": {"accuracy": 50.0}, "pid": os.getpid()}, f)
    return 0


def fake(root, name, mode="ok"):
    out = root / name
    return Run(run_id=name, argv=(sys.executable, "train.py", str(out), mode), output_dir=out, protocol="fewshot",
               trainer="Fake", dataset="d", seed=1, shots=1, config="c", role="fewshot")


def test_a_crash_replaces_the_worker_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(warm_pool, "RUN_TRAIN", "tests.test_warm_pool:fake_train")
    runs = [fake(tmp_path, "a"), fake(tmp_path, "b", "crash"), fake(tmp_path, "c"), fake(tmp_path, "d", "raise"),
            fake(tmp_path, "e")]
    outcomes = sweep.run_local(runs, [{"CUDA_VISIBLE_DEVICES": ""}], say=lambda m: None, poll_s=0.05,
                               runner="warm")
    status = {k: o.status for k, o in outcomes.items()}
    assert status == {"a": "done", "b": "failed", "c": "done", "d": "failed", "e": "done"}
    assert "exit code 7" in outcomes["b"].detail
    assert "RuntimeError: asked to raise" in (tmp_path / "d" / "run.log").read_text()
    pid = {n: json.loads((tmp_path / n / "results.json").read_text())["pid"] for n in ("a", "c", "e")}
    assert pid["a"] != pid["c"]  # the crashed worker was replaced
    assert pid["c"] == pid["e"] != os.getpid()  # a raising run does not cost the worker
    assert "fake run in" in (tmp_path / "a" / "run.log").read_text()


def test_warm_runs_equal_one_process_per_run(tmp_path):
    """CoOp on the toy benchmark (train on base, evaluate on new), seed 1, through both runners."""
    results = {}
    for runner in ("process", "warm"):
        settings = Settings(data_root=tmp_path / "data", output_root=tmp_path / runner,
                            opts=("OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
                                  "MODEL.BACKBONE.CACHE_DIR", str(tmp_path / runner / "cache")))
        runs = expand("base2new", ["CoOp"], ["toy_shapes"], [1], settings, config="toy")
        assert sweep.execute(runs, settings.output_root, jobs=1, runner=runner, say=lambda m: None) == 0
        results[runner] = runs
    for proc_run, warm_run in zip(results["process"], results["warm"]):
        a = json.loads((proc_run.output_dir / "results.json").read_text())
        b = json.loads((warm_run.output_dir / "results.json").read_text())
        assert a["metrics"] == b["metrics"] and a["seed"] == b["seed"] == 1
        assert (warm_run.output_dir / "log.txt").is_file()
    train_p, train_w = results["process"][0], results["warm"][0]
    ckpt = [torch.load(r.output_dir / "prompt_learner" / "model.pth.tar-1", weights_only=True)["state_dict"]["ctx"]
            for r in (train_p, train_w)]
    assert torch.equal(*ckpt)
    # the evaluation run reused the backbone the training run had loaded, in the same worker
    assert "reused (no reload)" in results["warm"][1].log_path.read_text()
