"""Evaluation protocols: the one place where the command lines and output directories of every run are built.

A protocol turns (trainer, dataset, seed, shots, config) into :class:`Run` objects: the exact ``python train.py ...``
argv, the output directory in the CoOp/CoCoOp layout, and the runs it depends on. The shell scripts in ``scripts/``,
``tools.sweep`` and ``tools.demo`` all go through :func:`expand`, so a command line is written in one place only.

Output layout under the output root (``$OUTPUT``, default ``output/``), following CoCoOp's and MaPLe's scripts
(``scripts/cocoop/*.sh`` of KaiyangZhou/CoOp, ``scripts/maple/*.sh`` of muzairkhattak/multimodal-prompt-learning;
docs/OFFICIAL_CODE.md):

* ``base2new/train_base/DATASET/shots_16/TRAINER/CFG/seedS``: training on base classes; its final test is the
  base-class accuracy.
* ``base2new/test_new/DATASET/shots_16/TRAINER/CFG/seedS``: ``--eval-only`` on new classes, loading the train_base
  directory at epoch ``OPTIM.MAX_EPOCH`` (read from the YAML or the opts, never hard-coded).
* ``base2new/test_base/...``: base-class evaluation of a model that does not train (zero-shot CLIP).
* ``fewshot/DATASET/TRAINER/CFG_Kshots/seedS``: training and testing on all classes with K shots.
* ``xd/train/imagenet/shots_16/TRAINER/CFG/seedS`` (source training) and ``xd/test/TARGET/shots_16/...``.
* ``dg/test/TARGET/shots_16/...``: domain generalisation evaluates the same ImageNet-trained model as
  cross-dataset transfer (CoCoOp's ``xd_train.sh``/``xd_test.sh`` pair serves both), so its source run is the one
  under ``xd/train/imagenet`` and is trained once.
* ``zeroshot/DATASET/TRAINER/CFG/seedS``: zero-shot CLIP on all classes.
* ``variants/<setting>-<digest>/...``: the same layout for runs that a sweep's ``--backbone`` or ``--opts`` change
  (:func:`variant_folder`), so that they never share a folder with the runs of the protocol's own configs.

Zero-shot methods on non-random weights cannot depend on the seed: :func:`expand` builds their runs for the first
requested seed only (:mod:`experiments.seed_free`).

A run is finished when its output directory holds a ``results.json`` that parses.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from engine.registry import TRAINER_REGISTRY
from engine.run_results import is_finished
from experiments.seed_free import backbone_of, is_seed_free
from trainers.facts import FewshotRule, coop_fewshot_rule, facts_of  # noqa: F401  (coop_fewshot_rule: re-exported)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"

PROTOCOLS = ("base2new", "fewshot", "xd", "dg", "zeroshot")

BASE2NEW_DATASETS = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
)
XD_SOURCE = "imagenet"
XD_TARGETS = tuple(d for d in BASE2NEW_DATASETS if d != XD_SOURCE)
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
SEEDS = (1, 2, 3)
FEWSHOT_SHOTS = (1, 2, 4, 8, 16)
TRANSFER_SHOTS = 16  # base2new, xd and dg train with 16 shots per class

# YAML stem -> Dassl DATASET.NAME (KaiyangZhou/CoOp ``configs/datasets``; docs/OFFICIAL_CODE.md); used when a
# configs/datasets YAML cannot be read.
DATASET_NAMES = {
    "imagenet": "ImageNet", "caltech101": "Caltech101", "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars", "oxford_flowers": "OxfordFlowers", "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft", "sun397": "SUN397", "dtd": "DescribableTextures", "eurosat": "EuroSAT",
    "ucf101": "UCF101", "imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNetSketch",
    "imagenet_a": "ImageNetA", "imagenet_r": "ImageNetR",
}


class ProtocolError(ValueError):
    """A protocol request that cannot be turned into runs; the message says what to change."""


# ---------------------------------------------------------------------------------------------------------------
# Default configs per method
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """Default configs of one trainer: its ``FACTS.protocol`` (``trainers.facts.ProtocolDefaults``, whose docstring
    describes the fields) with the trainer name and ``FACTS.zero_shot`` (``zero_shot`` methods never train: every
    run is ``--eval-only``); the configs are ``configs/trainers/<config_dir>/<name>.yaml``."""

    trainer: str
    base2new: str
    base2new_imagenet: Optional[str] = None
    transfer: Optional[str] = None
    fewshot: Optional[FewshotRule] = None
    config_dir: Optional[str] = None
    zero_shot: bool = False
    dataset_configs: Tuple[str, ...] = ()
    fewshot_dataset_values: bool = True
    reported_as: Tuple[str, ...] = ()
    reported_for: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, trainer: str, trainer_class: type) -> Optional["Method"]:
        """The method of a registered trainer class (``None`` when it declares no protocol defaults)."""
        facts = facts_of(trainer_class)
        if facts.protocol is None:
            return None
        values = {f.name: getattr(facts.protocol, f.name) for f in dataclasses.fields(facts.protocol)}
        return cls(trainer, zero_shot=facts.zero_shot, **values)

    @property
    def folder(self) -> str:
        return self.config_dir or self.trainer

    def reported_names(self, configs: Iterable[str] = ()) -> Tuple[str, ...]:
        """Names of the method in the published numbers, for runs made with ``configs`` (epoch tags ignored)."""
        by_family = {config_family(k): v for k, v in self.reported_for.items()}
        for config in configs:
            if config_family(config) in by_family:
                return by_family[config_family(config)]
        return self.reported_as or (self.trainer,)

    def config_for(self, protocol: str, dataset: str, shots: int) -> str:
        if protocol == "base2new":
            return self.base2new_imagenet if dataset == "imagenet" and self.base2new_imagenet else self.base2new
        if protocol in ("xd", "dg"):
            return self.transfer or self.base2new
        if protocol == "fewshot" and self.fewshot is not None:
            return self.fewshot(shots, dataset)
        return self.base2new


def config_family(config: str) -> str:
    """A config name without its epoch tag (``vit_b16_ep50_ctxv1`` -> ``vit_b16_ctxv1``): CoOp's base-to-new
    ImageNet config and its few-shot configs differ only in epochs and belong to one method."""
    return re.sub(r"_ep\d+", "", config)


def registered_methods() -> Dict[str, Method]:
    """Every registered trainer that declares protocol defaults on its class (``FACTS.protocol``), by name."""
    import trainers  # noqa: F401  (registers every trainer)

    methods = (Method.of(name, TRAINER_REGISTRY.get(name)) for name in TRAINER_REGISTRY.registered_names())
    return {m.trainer: m for m in methods if m is not None}


METHODS: Dict[str, Method] = registered_methods()


def method_for(trainer: str, config: Optional[str] = None) -> Method:
    """The trainer's defaults; a trainer without an entry works when its config name is given explicitly."""
    if trainer in METHODS:
        return METHODS[trainer]
    if config:
        return Method(trainer, config)
    raise ProtocolError(
        f"No default config for trainer {trainer!r} (known: {', '.join(METHODS)}). Pass the config name "
        f"explicitly (CFG argument / --config), or declare FACTS.protocol on its trainer class (trainers/facts.py).")


def trainer_is_seed_free(trainer: str, backbone: Optional[str]) -> bool:
    """:func:`is_seed_free` for a finished run's trainer name (unknown trainers are not seed-free)."""
    method = METHODS.get(trainer)
    return method is not None and is_seed_free(method.zero_shot, backbone)


# ---------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One ``train.py`` invocation. ``run_id`` is its output directory relative to the output root."""

    run_id: str
    argv: Tuple[str, ...]
    output_dir: Path
    protocol: str
    trainer: str
    dataset: str
    seed: int
    shots: int
    config: str
    role: str  # train_base, test_base, test_new, train, test, fewshot, zeroshot
    depends_on: Tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """Its ``results.json`` exists and parses (:mod:`engine.run_results`)."""
        return is_finished(self.output_dir)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def output_root(self) -> Path:
        """The output root the run id is relative to."""
        return self.output_dir.parents[len(Path(self.run_id).parts) - 1]

    def dependency_finished(self, run_id: str) -> bool:
        return is_finished(self.output_root / run_id)

    @property
    def log_path(self) -> Path:
        """Where the sweep runner writes the run's stdout and stderr."""
        return self.output_dir / "run.log"

    def log_header(self) -> str:
        """The line a sweep writes to :attr:`log_path` before each start of the run (local and Slurm launchers)."""
        return f"# {time.strftime('%Y-%m-%d %H:%M:%S')} tools.sweep: {self.command}\n"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(argv=list(self.argv), output_dir=str(self.output_dir), depends_on=list(self.depends_on))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Run":
        d = dict(d)
        d.update(argv=tuple(d["argv"]), output_dir=Path(d["output_dir"]), depends_on=tuple(d["depends_on"]))
        return cls(**d)


VARIANTS_DIR = "variants"


def variant_folder(backbone: Optional[str], opts: Sequence[str]) -> str:
    """The folder, relative to the output root, of runs whose configs a sweep changes with ``--backbone`` or
    ``--opts``: ``""`` when it changes nothing (the protocol's own layout), else
    ``variants/<readable setting>-<8 hex digits>``. The digest covers the exact backbone and opts, so two different
    settings never share a folder; the readable part (sanitised, cut at 80 characters) is for people.
    """
    if not backbone and not opts:
        return ""
    parts = ([f"backbone={backbone}"] if backbone else []) + [f"{k}={v}" for k, v in zip(opts[0::2], opts[1::2])]
    readable = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", ",".join(parts))[:80]
    digest = hashlib.sha256(json.dumps([backbone or "", [str(o) for o in opts]]).encode()).hexdigest()[:8]
    return f"{VARIANTS_DIR}/{readable}-{digest}"


@dataclass(frozen=True)
class Settings:
    """Where data, outputs and configs live, and what every run shares (backbone, trailing opts).

    ``variant`` is a folder under the output root that holds every run (``""``: the output root itself);
    ``tools.sweep`` sets it to :func:`variant_folder` of its backbone and opts."""

    data_root: Path
    output_root: Path
    python: str = sys.executable
    configs_dir: Path = CONFIGS_DIR
    backbone: Optional[str] = None
    opts: Tuple[str, ...] = field(default_factory=tuple)
    variant: str = ""

    def __post_init__(self):
        if len(self.opts) % 2:
            raise ProtocolError(f"Trailing options must be KEY VALUE pairs; got an odd number: {list(self.opts)}")


def settings_from_env(root: Optional[str] = None, output: Optional[str] = None, configs_dir: Optional[str] = None,
                      **kwargs) -> Settings:
    """Settings from options, falling back to the ``DATA`` and ``OUTPUT`` environment variables.

    Relative paths are taken relative to the current directory and made absolute (runs execute in the repo root).
    """
    root = root or os.environ.get("DATA")
    if not root:
        raise ProtocolError("No dataset root: set DATA=/path/to/datasets (or pass --root DIR).")
    output = output or os.environ.get("OUTPUT") or str(REPO_ROOT / "output")
    configs = Path(configs_dir).expanduser().resolve() if configs_dir else CONFIGS_DIR
    return Settings(data_root=Path(root).expanduser().resolve(), output_root=Path(output).expanduser().resolve(),
                    configs_dir=configs, **kwargs)


def _shown(path: Path) -> str:
    """A config path relative to the repo root where possible (runs execute there), else absolute."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def dataset_config(stem: str, settings: Settings) -> Path:
    path = settings.configs_dir / "datasets" / f"{stem}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (settings.configs_dir / "datasets").glob("*.yaml"))
        raise ProtocolError(f"Unknown dataset {stem!r}: expected {path}. Known datasets: {', '.join(known) or 'none'}.")
    return path


def trainer_config(method: Method, config: str, settings: Settings) -> Path:
    path = settings.configs_dir / "trainers" / method.folder / f"{config}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (settings.configs_dir / "trainers" / method.folder).glob("*.yaml"))
        raise ProtocolError(f"Config {config!r} of trainer {method.trainer} not found: expected {path}. "
                            f"Available: {', '.join(known) or 'none'}.")
    return path


def dataset_name(stem: str, configs_dir: Path = CONFIGS_DIR) -> str:
    """``DATASET.NAME`` of a dataset YAML stem (e.g. oxford_pets -> OxfordPets)."""
    path = configs_dir / "datasets" / f"{stem}.yaml"
    if path.is_file():
        name = ((yaml.safe_load(path.read_text()) or {}).get("DATASET") or {}).get("NAME")
        if name:
            return str(name)
    return DATASET_NAMES.get(stem, stem)


def max_epoch(config_file: Path, opts: Sequence[str] = ()) -> int:
    """The epoch a finished run saved last: ``OPTIM.MAX_EPOCH`` from the opts, else the YAML, else the default."""
    pairs = dict(zip(opts[0::2], opts[1::2]))
    if "OPTIM.MAX_EPOCH" in pairs:
        return int(pairs["OPTIM.MAX_EPOCH"])
    loaded = yaml.safe_load(config_file.read_text()) or {}
    value = (loaded.get("OPTIM") or {}).get("MAX_EPOCH")
    if value is None:
        from engine.config.defaults import get_cfg_default

        value = get_cfg_default().OPTIM.MAX_EPOCH
    return int(value)


def yaml_opts(mapping: dict, prefix: str = "") -> List[str]:
    """A nested YAML mapping as trailing ``KEY VALUE`` opts (values as yacs parses them back)."""
    opts: List[str] = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            opts += yaml_opts(value, f"{prefix}{key}.")
        else:
            opts += [f"{prefix}{key}", value if isinstance(value, str) else repr(value)]
    return opts


def dataset_overrides(method: Method, config: str, dataset: str, settings: Settings) -> List[str]:
    """The per-dataset opts of a training run (``configs/trainers/<dir>/datasets/<dataset>.yaml``), if any."""
    path = settings.configs_dir / "trainers" / method.folder / "datasets" / f"{dataset}.yaml"
    if config not in method.dataset_configs or not path.is_file():
        return []
    return yaml_opts(yaml.safe_load(path.read_text()) or {})


class _Builder:
    """Builds the runs of one (protocol, trainer, seed, shots, config) for a dataset."""

    def __init__(self, protocol: str, method: Method, seed: int, shots: int, config: Optional[str],
                 settings: Settings):
        self.protocol, self.method, self.seed, self.shots = protocol, method, seed, shots
        self.config_override, self.s = config, settings

    def config(self, dataset: str) -> str:
        return self.config_override or self.method.config_for(self.protocol, dataset, self.shots)

    def run(self, rel: str, dataset: str, role: str, opts: Sequence[str] = (), load_from: Optional[Run] = None,
            eval_only: bool = False) -> Run:
        config = self.config(dataset) if load_from is None else load_from.config
        cfg_file = trainer_config(self.method, config, self.s)
        rel = f"{self.s.variant}/{rel}" if self.s.variant else rel
        out = self.s.output_root / rel
        argv = [self.s.python, "train.py", "--root", str(self.s.data_root), "--seed", str(self.seed),
                "--trainer", self.method.trainer,
                "--dataset-config-file", _shown(dataset_config(dataset, self.s)),
                "--config-file", _shown(cfg_file), "--output-dir", str(out)]
        if self.s.backbone:
            argv += ["--backbone", self.s.backbone]
        if load_from is not None:
            argv += ["--eval-only", "--model-dir", str(load_from.output_dir),
                     "--load-epoch", str(max_epoch(cfg_file, self.s.opts))]
        elif eval_only:
            argv += ["--eval-only"]
        elif self.protocol != "fewshot" or self.method.fewshot_dataset_values:
            opts = [*opts, *dataset_overrides(self.method, config, dataset, self.s)]
        argv += [*opts, *self.s.opts]
        return Run(run_id=rel, argv=tuple(argv), output_dir=out, protocol=self.protocol, trainer=self.method.trainer,
                   dataset=dataset, seed=self.seed, shots=self.shots, config=config, role=role,
                   depends_on=(load_from.run_id,) if load_from is not None else ())

    def tail(self, dataset: str, config: str) -> str:
        return f"{dataset}/shots_{self.shots}/{self.method.trainer}/{config}/seed{self.seed}"

    def base2new(self, dataset: str) -> List[Run]:
        shots = ["DATASET.NUM_SHOTS", str(self.shots)]
        tail = self.tail(dataset, self.config(dataset))
        if self.method.zero_shot:
            return [self.run(f"base2new/test_base/{tail}", dataset, "test_base",
                             shots + ["DATASET.SUBSAMPLE_CLASSES", "base"], eval_only=True),
                    self.run(f"base2new/test_new/{tail}", dataset, "test_new",
                             shots + ["DATASET.SUBSAMPLE_CLASSES", "new"], eval_only=True)]
        train = self.run(f"base2new/train_base/{tail}", dataset, "train_base",
                         shots + ["DATASET.SUBSAMPLE_CLASSES", "base"])
        return [train, self.run(f"base2new/test_new/{tail}", dataset, "test_new",
                                shots + ["DATASET.SUBSAMPLE_CLASSES", "new"], load_from=train)]

    def fewshot(self, dataset: str) -> List[Run]:
        if self.method.zero_shot:
            raise ProtocolError(f"{self.method.trainer} does not train; use the zeroshot protocol instead of fewshot.")
        config = self.config(dataset)
        rel = f"fewshot/{dataset}/{self.method.trainer}/{config}_{self.shots}shots/seed{self.seed}"
        return [self.run(rel, dataset, "fewshot", ["DATASET.NUM_SHOTS", str(self.shots)])]

    def transfer(self, target: str) -> List[Run]:
        """xd or dg: the ImageNet-source run (shared by both protocols) and the evaluation on ``target``."""
        config = self.config(XD_SOURCE)
        test_rel = f"{self.protocol}/test/{self.tail(target, config)}"
        if self.method.zero_shot:  # nothing to train: the source column is an evaluation too
            source = self.run(f"xd/test/{self.tail(XD_SOURCE, config)}", XD_SOURCE, "test", eval_only=True)
            return [source] if target == XD_SOURCE else [source, self.run(test_rel, target, "test", eval_only=True)]
        if target == XD_SOURCE:
            raise ProtocolError(f"{XD_SOURCE} is the source of the {self.protocol} protocol, not a target.")
        source = self.run(f"xd/train/{self.tail(XD_SOURCE, config)}", XD_SOURCE, "train",
                          ["DATASET.NUM_SHOTS", str(self.shots)])
        return [source, self.run(test_rel, target, "test", load_from=source)]

    def zeroshot(self, dataset: str) -> List[Run]:
        if not self.method.zero_shot:
            raise ProtocolError(f"The zeroshot protocol evaluates zero-shot methods only "
                                f"({', '.join(m for m, v in METHODS.items() if v.zero_shot)}), not "
                                f"{self.method.trainer}.")
        config = self.config(dataset)
        rel = f"zeroshot/{dataset}/{self.method.trainer}/{config}/seed{self.seed}"
        return [self.run(rel, dataset, "zeroshot", eval_only=True)]


def default_datasets(protocol: str) -> Tuple[str, ...]:
    """The datasets ``all`` stands for in each protocol (xd and dg list their targets)."""
    return {"base2new": BASE2NEW_DATASETS, "fewshot": BASE2NEW_DATASETS, "xd": XD_TARGETS, "dg": DG_TARGETS,
            "zeroshot": BASE2NEW_DATASETS + DG_TARGETS}[_check_protocol(protocol)]


def default_shots(protocol: str) -> Tuple[int, ...]:
    return FEWSHOT_SHOTS if _check_protocol(protocol) == "fewshot" else (TRANSFER_SHOTS,)


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    return protocol


def build_runs(protocol: str, trainer: str, dataset: str, seed: int, settings: Settings,
               shots: Optional[int] = None, config: Optional[str] = None) -> List[Run]:
    """The runs of one (protocol, trainer, dataset, seed, shots, config), dependencies first.

    ``dataset`` is a ``configs/datasets`` stem (the target for xd and dg); ``config`` overrides the method's
    default config name; ``shots`` defaults to 16.
    """
    _check_protocol(protocol)
    if shots is None:
        shots = TRANSFER_SHOTS
    builder = _Builder(protocol, method_for(trainer, config), seed, shots, config, settings)
    step = {"base2new": builder.base2new, "fewshot": builder.fewshot, "xd": builder.transfer,
            "dg": builder.transfer, "zeroshot": builder.zeroshot}[protocol]
    return step(dataset)


def expand(protocol: str, trainers: Iterable[str], datasets: Optional[Iterable[str]], seeds: Iterable[int],
           settings: Settings, shots: Optional[Iterable[int]] = None,
           config: Optional[object] = None) -> List[Run]:
    """Every run of a grid, deduplicated (xd/dg share their source run), dependencies before dependents.

    ``datasets``/``shots`` of None or ``["all"]`` mean the protocol's defaults; ``config`` is None, one config
    name for every trainer, or a ``{trainer: config}`` mapping.
    """
    datasets = list(datasets or ["all"])
    if "all" in datasets:
        datasets = [d for d in datasets if d != "all"] + [d for d in default_datasets(protocol) if d not in datasets]
    shot_list = list(shots) if shots else list(default_shots(protocol))
    seeds = list(seeds)
    runs: Dict[str, Run] = {}
    for trainer in trainers:
        cfg = config.get(trainer) if isinstance(config, dict) else config
        for dataset in datasets:
            for k in shot_list:
                for seed in seeds[:1] if _seed_free(protocol, trainer, dataset, int(k), cfg, settings) else seeds:
                    for run in build_runs(protocol, trainer, dataset, int(seed), settings, int(k), cfg):
                        runs.setdefault(run.run_id, run)
    return list(runs.values())


def _seed_free(protocol: str, trainer: str, dataset: str, shots: int, config: Optional[str],
               settings: Settings) -> bool:
    """Whether the runs of this cell cannot depend on the seed, so they run for the first seed only
    (:mod:`experiments.seed_free`)."""
    method = method_for(trainer, config)
    if not method.zero_shot:
        return False
    builder = _Builder(protocol, method, 1, shots, config, settings)
    backbone = backbone_of(trainer_config(method, builder.config(dataset), settings), settings.backbone, settings.opts)
    return is_seed_free(True, backbone)


def parse_seeds(values: Sequence[str]) -> List[int]:
    """``["all"]`` -> 1 2 3; otherwise integers (0 is a valid seed)."""
    if not values or list(values) == ["all"]:
        return list(SEEDS)
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ProtocolError(f"Seeds must be integers or 'all'; got {' '.join(values)}.") from None


def parse_shots(values: Optional[Sequence[str]]) -> Optional[List[int]]:
    """``None`` or ``["all"]`` -> the protocol's default; otherwise positive integers."""
    if not values or list(values) == ["all"]:
        return None
    try:
        shots = [int(v) for v in values]
    except ValueError:
        raise ProtocolError(f"Shots must be integers or 'all'; got {' '.join(values)}.") from None
    if any(k < 1 for k in shots):
        raise ProtocolError(f"Shots must be at least 1; got {' '.join(values)}.")
    return shots
