"""A trained run (or zero-shot CLIP) rebuilt for any list of class names, without its dataset.

    trainer = load_run("output/pets/CoOp/seed1", ["cat", "dog"])            # config + weights from the run
    trainer = zeroshot_trainer("ZeroshotCLIP", "ViT-B/16", ["cat", "dog"])  # nothing trained
    logits = trainer.model_inference(images)                                # [B, C], after trainer.before_test()

The run directory's ``config.yaml`` (written by ``train.py``) gives the trainer, backbone and every setting; the
weights are loaded by the trainer's own ``load_model`` (``model.pth.tar-<E>``, else the best, else the newest; the
official Dassl layouts go through the same mappers as ``--eval-only --model-dir``). The trainer is the registered
class with one change: its data manager holds only the class names (:class:`ClassNamesData`), so the text side
(learned context, label tokens, ...) is built for exactly those names. Class names are used as given, ``_`` read as
a space, as for datasets. For LAMM, names without a learned label fall back to their own tokens (docs/LAMM.md).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
from typing import List, Optional, Sequence

import torch

from engine.config import build_cfg
from engine.data.transforms import build_transform

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]  # OpenAI CLIP's preprocessing statistics
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class ClassNamesData:
    """Stands in for ``DataManager``: the class names and nothing to load (``dm.dataset.classnames`` etc.)."""

    def __init__(self, classnames: Sequence[str]):
        self.dataset = self
        self.classnames = list(classnames)
        self.lab2cname = dict(enumerate(self.classnames))
        self.num_classes = len(self.classnames)
        self.num_source_domains = 0
        self.train_x, self.val, self.test = [], [], []
        self.train_loader_x = self.train_loader_u = self.val_loader = self.test_loader = None


def trainer_for_classes(cfg, classnames: Sequence[str], input_size_from_backbone: bool = False):
    """The registered trainer of ``cfg`` built for ``classnames`` (a subclass whose data is :class:`ClassNamesData`).

    ``input_size_from_backbone``: ``INPUT.SIZE`` becomes the backbone's own input size once it is loaded (zero-shot
    CLIP served without a config file), instead of being checked against it."""
    from engine import TRAINER_REGISTRY

    if len(classnames) < 1:
        raise ValueError("No class names given: pass --classname NAME once per class, or --classnames-file FILE "
                         "with one name per line.")
    if len(set(classnames)) != len(classnames):
        dup = sorted({c for c in classnames if list(classnames).count(c) > 1})
        raise ValueError(f"Class names must be unique; repeated: {', '.join(dup)}.")
    base = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)

    def build_data_loader(self):
        self.dm = ClassNamesData(classnames)
        for attr in ("train_loader_x", "train_loader_u", "val_loader", "test_loader", "num_classes",
                     "num_source_domains", "lab2cname"):
            setattr(self, attr, getattr(self.dm, attr))

    def adopt_input_size(self, backbone):
        frozen = self.cfg.is_frozen()
        self.cfg.defrost()
        self.cfg.INPUT.SIZE = (backbone.image_size, backbone.image_size)
        if frozen:
            self.cfg.freeze()

    methods = {"build_data_loader": build_data_loader}
    if input_size_from_backbone:
        methods["check_input_size"] = adopt_input_size
    cls = type(f"{base.__name__}ForClassNames", (base,), methods)
    return cls(cfg)


def run_config(model_dir: str, opts: Sequence[str] = ()):
    """The resolved config of a training run (``<model_dir>/config.yaml``), with ``opts`` applied."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --model-dir must be a run directory written by train.py "
                                f"(it holds {CONFIG_FILE} and one folder of checkpoints per trained module).")
    return build_cfg("", path, list(opts))


def load_run(model_dir: str, classnames: Sequence[str], load_epoch: Optional[int] = None, opts: Sequence[str] = ()):
    """The run's trainer for ``classnames`` with its trained weights loaded, in evaluation mode. ``model_dir`` may
    also be a ``prompts`` file written by ``tools.export``."""
    if os.path.isfile(model_dir):
        return load_exported(model_dir, classnames, opts)
    trainer = trainer_for_classes(run_config(model_dir, opts), classnames)
    if trainer.get_model_names():
        trainer.load_model(model_dir, epoch=load_epoch)
    trainer.set_model_mode("eval")
    return trainer


def load_exported(path: str, classnames: Sequence[str], opts: Sequence[str] = ()):
    """The trainer of a ``tools.export`` ``prompts`` file for ``classnames``, its modules loaded, in evaluation mode."""
    import tempfile

    artefact = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(artefact, dict) or artefact.get("kind") != "prompts":
        kind = artefact.get("kind") if isinstance(artefact, dict) else None
        raise ValueError(f"{path} is not a prompts export of tools.export (kind {kind!r}); a text_features export "
                         "is used directly with open_clip (README, \"Your own data\").")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(artefact["config"])
    try:
        cfg = build_cfg("", f.name, list(opts))
    finally:
        os.remove(f.name)
    trainer = trainer_for_classes(cfg, classnames or artefact["classnames"])
    check_backbone(trainer, artefact, path)
    for name, saved in artefact["modules"].items():
        trainer.load_model_state_dict(name, saved["state_dict"])
        trainer.load_extra_checkpoint_state(name, saved)
    trainer.set_model_mode("eval")
    return trainer


def check_backbone(trainer, artefact: dict, path: str) -> None:
    """Refuse to serve an export with backbone weights other than those it was made with (``backbone_sha256``)."""
    from .export import backbone_fp32, weights_sha256

    expected = artefact.get("backbone_sha256")
    if expected is None:
        logger.warning("%s records no backbone digest (an export of an older version): the backbone weights loaded "
                       "for it are not checked.", path)
        return
    if weights_sha256(backbone_fp32(trainer)) != expected:
        raise ValueError(f"{path} was exported with other weights for backbone {trainer.cfg.MODEL.BACKBONE.NAME!r} "
                         "than the ones loaded here (their SHA-256 digests differ), so its predictions would not be "
                         "the exported model's: serve it with the backbone weights it was made with.")


def zeroshot_trainer(trainer: str, backbone: str, classnames: Sequence[str], config_file: str = "",
                     opts: Sequence[str] = ()):
    """Zero-shot CLIP (``ZeroshotCLIP``/``ZeroshotCLIP2``) on ``backbone`` for ``classnames``; CLIP's preprocessing
    (bicubic, CLIP statistics, the backbone's input size) unless ``config_file`` sets the input."""
    base = ["INPUT.INTERPOLATION", "bicubic", "INPUT.PIXEL_MEAN", str(CLIP_MEAN), "INPUT.PIXEL_STD", str(CLIP_STD),
            "INPUT.TRANSFORMS", "('normalize',)"] if not config_file else []
    cfg = build_cfg("", config_file, [*base, *opts], trainer=trainer, backbone=backbone)
    model = trainer_for_classes(cfg, classnames, input_size_from_backbone=not config_file)
    model.set_model_mode("eval")
    return model


def eval_transform(trainer, match_backbone: bool = False):
    """The run's test-time preprocessing; ``match_backbone`` sets the input size to a ViT backbone's own."""
    cfg = trainer.cfg
    if match_backbone and trainer.clip_model.is_vit:
        cfg = cfg.clone()
        cfg.defrost()
        size = trainer.clip_model.image_size
        cfg.INPUT.SIZE = (size, size)
    return build_transform(cfg, is_train=False)


@torch.no_grad()
def text_side(trainer) -> None:
    """Prepare the trainer's per-evaluation text cache (``before_test``), as ``test()`` does."""
    trainer.set_model_mode("eval")
    trainer.before_test()


CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def add_class_name_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """``--classname NAME`` (repeated) and ``--classnames-file FILE``: each flag takes exactly one value, so class
    names and image paths cannot swallow each other whatever their order. ``default`` says what no flag means."""
    parser.add_argument("--classname", action="append", default=[], metavar="NAME",
                        help=f"a class name; repeat the flag for each class (default: {default})")
    parser.add_argument("--classnames-file", default="", metavar="FILE",
                        help="a text file with one class name per line (blank lines skipped)")
    parser.add_argument("--classnames", nargs="*", default=None, help=argparse.SUPPRESS)


def class_names_from_args(args: argparse.Namespace) -> Optional[List[str]]:
    """The class names of ``--classnames-file`` then ``--classname``, or ``None`` when neither is given. Empty names
    and names that are existing files or folders (an image path given as a name) are refused."""
    if args.classnames is not None:
        raise ValueError("--classnames was replaced by --classname NAME (once per class) or --classnames-file FILE, "
                         "so that class names and image paths cannot be confused.")
    names: List[str] = []
    if args.classnames_file:
        if not os.path.isfile(args.classnames_file):
            raise FileNotFoundError(f"--classnames-file {args.classnames_file}: no such file.")
        with open(args.classnames_file, encoding="utf-8") as f:
            names += [line.strip() for line in f if line.strip()]
        if not names:
            raise ValueError(f"--classnames-file {args.classnames_file} holds no class names (one per line).")
    for name in args.classname:
        if not name.strip():
            raise ValueError("--classname is empty: every class needs a name (quote names with spaces).")
        if os.path.exists(name):
            raise ValueError(f"--classname {name!r} is an existing file or folder, not a class name: pass images as "
                             "inputs, and a file of class names with --classnames-file.")
        names.append(name.strip())
    return names or None


def check_opts(opts: Sequence[str]) -> List[str]:
    """``--opts``: config ``KEY VALUE`` pairs. Anything else (e.g. an image path after ``--opts``) is refused."""
    opts = list(opts)
    bad = [k for k in opts[::2] if not CONFIG_KEY.match(k)]
    if len(opts) % 2 or bad:
        what = f"{bad[0]!r} is not a config key" if bad else f"{opts[-1]!r} has no value"
        raise ValueError(f"--opts takes config KEY VALUE pairs, e.g. --opts TEST.FEATURE_CACHE False, and comes last "
                         f"on the line; {what}.")
    return opts
