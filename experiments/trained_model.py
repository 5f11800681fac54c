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

import hashlib
import logging
import os
import re
from typing import List, Optional, Sequence

import torch

from engine.config import build_cfg
from engine.data.transforms import build_transform
from engine.errors import UserError

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

    ``input_size_from_backbone``: ``INPUT.SIZE`` becomes a ViT backbone's own input size once it is loaded
    (zero-shot CLIP served without a config file), instead of being checked against it."""
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
        if not backbone.is_vit:  # a ResNet takes any size: the config's stands
            return
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


def run_config(model_dir: str, opts: Sequence[str] = (), root: Optional[str] = None, output_dir: Optional[str] = None):
    """The resolved config of a training run (``<model_dir>/config.yaml``), with ``opts`` applied; ``root`` and
    ``output_dir``, when given, replace the dataset root and the output directory."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --model-dir must be a run directory written by train.py "
                                f"(it holds {CONFIG_FILE} and one folder of checkpoints per trained module).")
    return build_cfg("", path, list(opts), root=root, output_dir=output_dir)


def load_run(model_dir: str, classnames: Sequence[str] = (), load_epoch: Optional[int] = None, opts: Sequence[str] = (),
             *, with_data: bool = False, root: Optional[str] = None, output_dir: Optional[str] = None):
    """The run's trainer with its trained weights loaded (nothing to load for zero-shot CLIP), in evaluation mode.

    By default it is built for ``classnames`` without its dataset, and ``model_dir`` may also be a ``prompts`` file
    written by ``tools.export``. ``with_data``: built on its own dataset (``classnames`` unused; ``root`` and
    ``output_dir`` as in :func:`run_config`), its loaders ready and the RNGs seeded with the run's seed, as
    ``train.py --eval-only`` does."""
    if with_data:
        from engine import build_trainer
        from engine.utils import set_random_seed

        cfg = run_config(model_dir, opts, root=root, output_dir=output_dir)
        set_random_seed(cfg.SEED)
        trainer = build_trainer(cfg)
    elif os.path.isfile(model_dir):
        return load_exported(model_dir, classnames, opts)
    else:
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
    expected = artefact.get("backbone_sha256")
    if expected is None:
        logger.warning("%s records no backbone digest (an export of an older version): the backbone weights loaded "
                       "for it are not checked.", path)
        return
    if weights_sha256(backbone_fp32(trainer)) != expected:
        raise ValueError(f"{path} was exported with other weights for backbone {trainer.cfg.MODEL.BACKBONE.NAME!r} "
                         "than the ones loaded here (their SHA-256 digests differ), so its predictions would not be "
                         "the exported model's: serve it with the backbone weights it was made with.")


def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of a module's weights: for each state-dict entry in sorted name order, the UTF-8 name followed by
    the tensor's fp32 values in C order (``tensor.float().numpy().tobytes()``). The README snippet computes the
    same over ``model.visual`` to check an export's ``visual_sha256``."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def backbone_fp32(trainer) -> torch.nn.Module:
    """The trainer's open_clip model with fp32 weights: its own when it runs in fp32, else the same backbone loaded
    again (a GPU run may hold it in fp16), so that digests do not depend on the precision."""
    from clip.loading import load_model

    model = trainer.clip_model.model
    if all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point()):
        return model
    backbone = trainer.cfg.MODEL.BACKBONE
    return load_model(backbone.NAME, backbone.get("CACHE_DIR", "") or None)


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


def eval_transform(trainer):
    """The run's test-time preprocessing (its ``INPUT.SIZE`` is the ViT's own: checked at build, or adopted by
    :func:`zeroshot_trainer` without a config file)."""
    return build_transform(trainer.cfg, is_train=False)


@torch.no_grad()
def text_side(trainer) -> None:
    """Prepare the trainer's per-evaluation text cache (``before_test``), as ``test()`` does."""
    trainer.set_model_mode("eval")
    trainer.before_test()


def split_loader(trainer, split: str):
    """The run's ``test`` loader, or its ``val`` loader when its dataset has one."""
    if split == "test":
        return trainer.test_loader
    if split == "val" and trainer.val_loader is not None:
        return trainer.val_loader
    raise UserError(f'--split {split}: {trainer.cfg.DATASET.NAME} has no such split here; use "test" (or "val" when '
                    "the dataset has one).")


CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def check_opts(opts: Sequence[str]) -> List[str]:
    """``--opts``: config ``KEY VALUE`` pairs. Anything else (e.g. an image path after ``--opts``) is refused."""
    opts = list(opts)
    bad = [k for k in opts[::2] if not CONFIG_KEY.match(k)]
    if len(opts) % 2 or bad:
        what = f"{bad[0]!r} is not a config key" if bad else f"{opts[-1]!r} has no value"
        raise ValueError(f"--opts takes config KEY VALUE pairs, e.g. --opts TEST.FEATURE_CACHE False, and comes last "
                         f"on the line; {what}.")
    return opts
