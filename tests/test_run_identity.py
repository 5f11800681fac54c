"""A finished run is reused only if it is the run asked for: engine.config_fingerprint's identity of a finished run,
and the variant folders that keep a sweep's --backbone / --opts runs apart from the protocol's own."""
import copy

from engine.config_fingerprint import config_diff, config_fingerprint, evaluation_diff, finished_run_diff
from experiments.protocols import Settings, expand, variant_folder

CONFIG = {"SEED": 1, "OUTPUT_DIR": "/a", "DATALOADER": {"NUM_WORKERS": 0},
          "MODEL": {"BACKBONE": {"NAME": "toyclip"}}, "OPTIM": {"LR": 0.05, "MAX_EPOCH": 16}}


def test_fingerprint_covers_exactly_the_result_relevant_keys():
    other_place = copy.deepcopy(CONFIG)
    other_place["OUTPUT_DIR"], other_place["DATALOADER"]["NUM_WORKERS"] = "/b", 8  # cannot change a result
    assert config_fingerprint(other_place) == config_fingerprint(CONFIG)
    for path, value in ((("MODEL", "BACKBONE", "NAME"), "random:ViT-S-32"), (("OPTIM", "LR"), 0.1), (("SEED",), 2)):
        changed = copy.deepcopy(CONFIG)
        node = changed
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert config_fingerprint(changed) != config_fingerprint(CONFIG), path
        assert config_diff(CONFIG, changed) == [(".".join(path), _get(CONFIG, path), value)]


def _get(d, path):
    for key in path:
        d = d[key]
    return d


def test_finished_run_diff_reads_the_config_then_the_fingerprint():
    current = copy.deepcopy(CONFIG)
    current["MODEL"]["BACKBONE"]["NAME"] = "random:ViT-S-32"
    # a results.json written before the fingerprint existed: the identity is recomputed from its config
    assert finished_run_diff({"config": CONFIG}, CONFIG) == []
    assert finished_run_diff({"config": CONFIG}, current) == [("MODEL.BACKBONE.NAME", "toyclip", "random:ViT-S-32")]
    # only a fingerprint: compared as a whole
    assert finished_run_diff({"config_fingerprint": config_fingerprint(CONFIG)}, CONFIG) == []
    assert finished_run_diff({"config_fingerprint": config_fingerprint(CONFIG)}, current) == [
        ("config_fingerprint", config_fingerprint(CONFIG), config_fingerprint(current))]
    assert finished_run_diff({"metrics": {"accuracy": 1.0}}, CONFIG) is None  # nothing to check


def test_variant_folder_is_empty_by_default_and_distinct_per_setting():
    assert variant_folder(None, ()) == ""
    a = variant_folder("random:ViT-S-32", ())
    b = variant_folder(None, ("OPTIM.MAX_EPOCH", "1"))
    c = variant_folder("random:ViT-S-32", ("OPTIM.MAX_EPOCH", "1"))
    assert len({a, b, c}) == 3 and all(v.startswith("variants/") for v in (a, b, c))
    assert a.startswith("variants/backbone=random_ViT-S-32-") and "/" not in a[len("variants/"):]
    # settings that sanitise to the same text still get different folders
    assert variant_folder("x/y", ()) != variant_folder("x:y", ())


def test_runs_of_a_variant_live_in_its_folder(tmp_path):
    plain = Settings(tmp_path / "d", tmp_path / "o", python="python")
    variant = Settings(tmp_path / "d", tmp_path / "o", python="python", backbone="random:ViT-S-32",
                       variant=variant_folder("random:ViT-S-32", ()))
    (p_train, p_test), (v_train, v_test) = (expand("base2new", ["CoOp"], ["toy_shapes"], [1], s, config="toy")
                                            for s in (plain, variant))
    assert p_train.run_id == "base2new/train_base/toy_shapes/shots_16/CoOp/toy/seed1"  # today's layout
    assert v_train.run_id == f"{variant.variant}/{p_train.run_id}"
    assert v_train.output_dir == tmp_path / "o" / v_train.run_id and v_train.output_root == tmp_path / "o"
    assert v_test.depends_on == (v_train.run_id,) and f"--model-dir {v_train.output_dir}" in v_test.command


def test_evaluation_diff_compares_what_an_evaluation_loads(tmp_path):
    model = str(tmp_path / "m")
    recorded = {"eval_only": True, "model_dir": model, "load_epoch": 5}
    assert evaluation_diff(recorded, True, str(tmp_path / "x" / ".." / "m"), 5) == []  # the same folder
    assert evaluation_diff(recorded, True, str(tmp_path / "n"), 6) == [
        ("--model-dir", model, str(tmp_path / "n")), ("--load-epoch", 5, 6)]
    assert evaluation_diff(recorded, False, "", None) == [
        ("--eval-only", True, False), ("--model-dir", model, None), ("--load-epoch", 5, None)]
    assert evaluation_diff({"eval_only": False, "model_dir": None, "load_epoch": None}, False, "", None) == []
