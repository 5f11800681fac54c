"""The method contract: every registered trainer declares what a first-class method needs (``trainers/facts.py``),
checked for every entry of ``TRAINER_REGISTRY`` the way timm tests every model of ``list_models()``; and the worked
example of ``docs/ADDING_A_METHOD.md`` passes it and trains for one epoch on the toy backbone."""
from __future__ import annotations

import dataclasses
import importlib
import os
import re
from typing import List

import pytest

import trainers  # noqa: F401  (registers every trainer)
from engine import build_trainer
from engine.config import build_cfg
from engine.registry import TRAINER_REGISTRY
from engine.utils import set_random_seed
from tests.helpers import TINY_VIT, make_color_dataset, tiny_cfg
from trainers.base import PromptTrainer
from trainers.facts import MethodFacts, facts_of, precision_node

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = (1, 2, 4, 8, 16)
FEWSHOT_DATASETS = ("imagenet", "dtd", "food101", "oxford_pets")
GUIDE = os.path.join(REPO, "docs", "ADDING_A_METHOD.md")


def config_file(folder: str, name: str) -> str:
    return os.path.join(REPO, "configs", "trainers", folder, f"{name}.yaml")


def readme_methods_rows() -> str:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    return text.split("\n## Methods\n", 1)[1].split("\n## ", 1)[0] if "\n## Methods\n" in text else ""


def protocol_failures(name: str, facts: MethodFacts) -> List[str]:
    p = facts.protocol
    if p is None:
        return ["no protocol defaults (FACTS.protocol)"]
    folder = p.config_dir or name
    names = {p.base2new, p.base2new_imagenet, p.transfer, *p.dataset_configs}
    if p.fewshot is not None and not facts.zero_shot:
        names |= {p.fewshot(k, d) for k in SHOTS for d in FEWSHOT_DATASETS}
    return [f"protocol config {folder}/{n}.yaml does not exist" for n in sorted(n for n in names if n)
            if not os.path.isfile(config_file(folder, n))]


def contract_failures(name: str) -> List[str]:
    """What the registered trainer ``name`` lacks to be a first-class method (empty: nothing)."""
    cls = TRAINER_REGISTRY.get(name)
    if not isinstance(getattr(cls, "FACTS", None), MethodFacts):
        return ["no FACTS (a trainers.facts.MethodFacts class attribute)"]
    facts = facts_of(cls)
    out = protocol_failures(name, facts)
    if facts.toy_config:
        if not os.path.isfile(os.path.join(REPO, facts.toy_config)):
            out.append(f"toy config {facts.toy_config} does not exist")
    elif not facts.no_toy_reason:
        out.append("no toy config (FACTS.toy_config) and no reason why not (FACTS.no_toy_reason)")
    if not facts.gpu_check and not facts.no_gpu_check_reason:
        out.append("left out of the GPU check without a reason (FACTS.no_gpu_check_reason)")
    if not facts.paper:
        out.append("no paper reference (FACTS.paper)")
    if facts.docs == "README.md#methods":
        if f"`{name}`" not in readme_methods_rows():
            out.append("FACTS.docs names README.md#methods but the README's Methods table has no row for it")
    elif not facts.docs or not os.path.isfile(os.path.join(REPO, facts.docs)):
        out.append(f"no docs page (FACTS.docs is {facts.docs!r})")
    if facts.released:
        module, _, function = facts.released.rpartition(".")
        try:
            found = callable(getattr(importlib.import_module(module), function, None))
        except ImportError:
            found = False
        if not found:
            out.append(f"released-checkpoint mapper {facts.released} cannot be imported")
    for official, ours in facts.official_configs.items():
        if not re.fullmatch(r"[\w.-]+/[\w.-]+ configs/\S+\.yaml", ours.source):
            out.append(f"official config {official}: source {ours.source!r} is not 'owner/repo configs/...yaml'")
        if ours.ours and not os.path.isfile(os.path.join(REPO, "configs", "trainers", f"{ours.ours}.yaml")):
            out.append(f"official config {official}: counterpart configs/trainers/{ours.ours}.yaml does not exist")
        if not ours.ours and not ours.why_not:
            out.append(f"official config {official} has no counterpart and no reason why not")
    return out


def tiny_build_failures(name: str, tmp_path) -> List[str]:
    """The trainer builds on the tests' tiny ViT with its ``tiny_opts``, with a ``PREC`` under its precision node."""
    facts = facts_of(TRAINER_REGISTRY.get(name))
    cfg = tiny_cfg(str(tmp_path / "data"), str(tmp_path / "run"), trainer=name,
                   opts=["OPTIM.MAX_EPOCH", "1", *facts.tiny_opts])
    node = precision_node(TRAINER_REGISTRY.get(name))
    if "PREC" not in cfg.TRAINER.get(node, {}):
        return [f"precision node TRAINER.{node} has no PREC"]
    set_random_seed(1)
    try:
        build_trainer(cfg)
    except Exception as e:  # noqa: BLE001 - any refusal means the tiny settings do not fit
        return [f"does not build on the tiny ViT with FACTS.tiny_opts: {type(e).__name__}: {e}"]
    return []


@pytest.mark.parametrize("name", sorted(TRAINER_REGISTRY.registered_names()))
def test_every_registered_trainer_is_a_first_class_method(name, tmp_path):
    assert contract_failures(name) + tiny_build_failures(name, tmp_path) == []


def test_nemesis_vit_b16_coop_pun_has_its_released_counterpart():
    entry = facts_of(TRAINER_REGISTRY.get("Nemesis")).official_configs["CoOpNemesis/vit_b16_ep50.yaml"]
    assert entry.ours == "Nemesis/vit_b16_pun_ep50"
    cfg = build_cfg("", os.path.join(REPO, "configs", "trainers", f"{entry.ours}.yaml"), trainer="Nemesis")
    assert (cfg.MODEL.BACKBONE.NAME, cfg.OPTIM.MAX_EPOCH, cfg.TRAINER.NEMESIS.BETA) == ("ViT-B/16", 50, 1.0)


@pytest.fixture
def scratch_registry(monkeypatch):
    """The trainer registry as a copy, restored after the test."""
    monkeypatch.setattr(TRAINER_REGISTRY, "_obj_map", dict(TRAINER_REGISTRY._obj_map))
    return TRAINER_REGISTRY


def in_folder(facts: MethodFacts, folder: str):
    """``facts.protocol`` reading its configs from ``configs/trainers/<folder>``."""
    return dataclasses.replace(facts.protocol, config_dir=folder)


def test_contract_fails_for_a_trainer_without_facts(scratch_registry):
    @scratch_registry.register()
    class Throwaway(PromptTrainer):  # noqa: F841 - registered by the decorator
        CFG_NODE = "COOP"

    assert contract_failures("Throwaway") == ["no FACTS (a trainers.facts.MethodFacts class attribute)"]


@pytest.mark.parametrize("change, missing", [
    ({"protocol": None}, "no protocol defaults"),
    ({"toy_config": ""}, "no toy config"),
    ({"toy_config": "configs/trainers/Throwaway/toy.yaml"}, "toy config configs/trainers/Throwaway/toy.yaml"),
    ({"docs": "docs/THROWAWAY.md"}, "no docs page"),
    ({"paper": ""}, "no paper reference"),
    ({"gpu_check": False}, "left out of the GPU check"),
    ({"released": "trainers.released.no_such_mapper"}, "cannot be imported"),
])
def test_contract_fails_for_each_missing_fact(scratch_registry, change, missing):
    coop = facts_of(TRAINER_REGISTRY.get("CoOp"))

    @scratch_registry.register()
    class Throwaway(PromptTrainer):  # noqa: F841 - registered by the decorator
        CFG_NODE = "COOP"
        FACTS = dataclasses.replace(coop, **{"docs": "docs/NEMESIS.md", "protocol": in_folder(coop, "CoOp"), **change})

    failures = contract_failures("Throwaway")
    assert len(failures) == 1 and missing in failures[0], failures


def test_contract_fails_for_an_official_config_without_counterpart(scratch_registry):
    nemesis = facts_of(TRAINER_REGISTRY.get("Nemesis"))
    official = dict(nemesis.official_configs)
    official["CoOpNemesis/vit_b16_ep50.yaml"] = dataclasses.replace(official["CoOpNemesis/vit_b16_ep50.yaml"],
                                                                    ours="Nemesis/vit_b16_ep50")

    @scratch_registry.register()
    class Throwaway(PromptTrainer):  # noqa: F841 - registered by the decorator
        FACTS = dataclasses.replace(nemesis, official_configs=official, protocol=in_folder(nemesis, "Nemesis"))

    assert contract_failures("Throwaway") == [
        "official config CoOpNemesis/vit_b16_ep50.yaml: counterpart configs/trainers/Nemesis/vit_b16_ep50.yaml does "
        "not exist"]


def worked_example() -> str:
    """The Python block of the guide's "Worked example" section."""
    from mktestdocs import grab_code_blocks

    text = open(GUIDE, encoding="utf-8").read()
    section = text.split("\n## Worked example", 1)[1].split("\n## ", 1)[0]
    blocks = grab_code_blocks(section, lang="python")
    assert len(blocks) == 1, "the Worked example section holds exactly one Python block"
    return blocks[0]


def test_the_guides_worked_example_is_first_class_and_trains_one_toy_epoch(scratch_registry, tmp_path):
    exec(compile(worked_example(), GUIDE, "exec"), {"__name__": "trainers.coop_norm"})
    assert "CoOpNorm" in scratch_registry
    assert contract_failures("CoOpNorm") + tiny_build_failures("CoOpNorm", tmp_path) == []

    make_color_dataset(str(tmp_path / "data"))
    cfg = build_cfg("", os.path.join(REPO, facts_of(scratch_registry.get("CoOpNorm")).toy_config),
                    ["DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "1", "TRAINER.COOP_NORM.WEIGHT", "0.5"],
                    root=str(tmp_path / "data"), output_dir=str(tmp_path / "toy"), seed=1, trainer="CoOpNorm")
    set_random_seed(1)
    trainer = build_trainer(cfg)
    trainer.train()
    metrics = [line for line in open(tmp_path / "toy" / "metrics.jsonl", encoding="utf-8")]
    assert len(metrics) == 1 and '"ctx_norm"' in metrics[0]
    assert (tmp_path / "toy" / "results.json").is_file()
