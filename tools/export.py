"""Export a trained run as the smallest artefact that serves it elsewhere.

    python -m tools.export output/mydata/CoOp/seed1 --out coop_mydata.pt --classnames cat dog "red fox"
    python -m tools.export --trainer ZeroshotCLIP --backbone ViT-B/16 --classnames names.txt --out zs.pt

Two kinds, chosen from the trained model:

- ``text_features``: when the class text features do not depend on the image and the image encoder is CLIP's own
  (CoOp, LAMM over CLIP or CoOp, Nemesis over CoOp, IVLP without vision prompts, zero-shot CLIP). The file holds
  ``text_features [C, D]`` (fp32, L2-normalised, computed by the trainer for ``classnames``), ``logit_scale``
  (``exp`` applied, CLIP's own), ``classnames`` and the backbone's identity (``backbone``: the project's name;
  ``open_clip``: ``{"arch", "pretrained"}`` when plain open_clip can build it by name; ``visual_sha256``: a digest
  of the image tower's weights). Plain open_clip then classifies with
  ``logit_scale * normalize(model.encode_image(x)) @ text_features.T`` (README, "Your own data").
- ``prompts``: for every other method (image-conditioned text, prompted or adapted image encoder). The file holds
  each trained module's state (the registered modules' tensors and extra checkpoint values) and the config keys
  that rebuild the trainer (``TRAINER``, ``MODEL``, ``INPUT``, ``DATASET.NAME``/``TEMPLATE``). ``tools.predict
  --model-dir FILE`` serves it for any class names.

Files are written atomically and load with ``torch.load(path, weights_only=True)``.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F

from engine.utils import atomic_torch_save

from .trained_model import class_names_arg, load_run, text_side, zeroshot_trainer

logger = logging.getLogger("export")

FORMAT_VERSION = 1
KINDS = ("text_features", "prompts")
CONFIG_KEYS = ("TRAINER", "MODEL", "INPUT")


def open_clip_identity(backbone_name: str) -> Optional[dict]:
    """``{"arch", "pretrained"}`` for ``open_clip.create_model_and_transforms`` when the backbone has a public name."""
    from clip.loading import OPENAI_MODELS

    if backbone_name in OPENAI_MODELS:
        return {"arch": OPENAI_MODELS[backbone_name][0], "pretrained": "openai"}
    if ":" in backbone_name and not backbone_name.startswith("random:"):
        arch, pretrained = backbone_name.split(":", 1)
        return {"arch": arch, "pretrained": pretrained}
    return None


def visual_sha256(trainer) -> str:
    """SHA-256 over the image tower's fp32 weights (names and bytes, in state-dict order)."""
    digest = hashlib.sha256()
    for name, tensor in trainer.clip_model.model.visual.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def feature_kind(trainer) -> bool:
    """Whether the trainer's logits are CLIP's head over image-independent text features and CLIP's own image
    features: zero-shot CLIP, or a PromptTrainer that overrides none of the image path and has no vision prompts."""
    from trainers.base import PromptTrainer
    from trainers.zsclip import ZeroshotCLIP

    if isinstance(trainer, ZeroshotCLIP):
        return True
    if not isinstance(trainer, PromptTrainer) or trainer.IMAGE_CONDITIONED_TEXT:
        return False
    cls = type(trainer)
    same = all(getattr(cls, m) is getattr(PromptTrainer, m) for m in ("image_features", "logits", "model_inference",
                                                                     "before_test"))
    vision = trainer.vision_prompts()
    return same and vision.prompts is None and not any(d is not None for d in (vision.deep or []))


@torch.no_grad()
def class_text_features(trainer) -> torch.Tensor:
    """The trainer's class text features ``[C, D]``, fp32 and L2-normalised, exactly as its evaluation uses them."""
    from trainers.zsclip import ZeroshotCLIP

    if isinstance(trainer, ZeroshotCLIP):
        features = trainer.text_weights
    else:
        text_side(trainer)
        features = trainer._eval_text_features
        trainer.after_test()
    return F.normalize(features.float(), dim=-1).cpu()


def minimal_config(cfg) -> str:
    """The YAML of the config keys that rebuild the trainer (see the module docstring)."""
    from yacs.config import CfgNode as CN

    out = CN({key: cfg[key].clone() for key in CONFIG_KEYS})
    out.DATASET = CN({"NAME": cfg.DATASET.NAME, "TEMPLATE": cfg.DATASET.get("TEMPLATE", "")})
    out.MODEL.INIT_WEIGHTS = ""
    return out.dump()


def export_features(trainer) -> dict:
    cfg = trainer.cfg
    return {
        "format": FORMAT_VERSION, "kind": "text_features", "trainer": cfg.TRAINER.NAME,
        "classnames": list(trainer.dm.dataset.classnames),
        "text_features": class_text_features(trainer),
        "logit_scale": float(trainer.logit_scale),
        "backbone": cfg.MODEL.BACKBONE.NAME, "open_clip": open_clip_identity(cfg.MODEL.BACKBONE.NAME),
        "visual_sha256": visual_sha256(trainer),
    }


def export_prompts(trainer) -> dict:
    modules = {}
    for name in trainer.get_model_names():
        state = {k: v.detach().cpu() for k, v in trainer.model_state_dict(name).items()}
        modules[name] = {"state_dict": state, **trainer.extra_checkpoint_state(name)}
    return {
        "format": FORMAT_VERSION, "kind": "prompts", "trainer": trainer.cfg.TRAINER.NAME,
        "classnames": list(trainer.dm.dataset.classnames), "config": minimal_config(trainer.cfg),
        "modules": modules, "backbone": trainer.cfg.MODEL.BACKBONE.NAME,
        "open_clip": open_clip_identity(trainer.cfg.MODEL.BACKBONE.NAME),
    }


def export(trainer, kind: str = "auto") -> dict:
    """The artefact of ``trainer`` (``auto``: ``text_features`` when :func:`feature_kind` allows it)."""
    can_features = feature_kind(trainer)
    if kind == "auto":
        kind = "text_features" if can_features else "prompts"
    if kind == "text_features" and not can_features:
        raise ValueError(f"{trainer.cfg.TRAINER.NAME} conditions the text on the image or changes the image encoder, "
                         "so fixed text features cannot reproduce it: export --kind prompts.")
    if kind == "prompts" and not trainer.get_model_names():
        raise ValueError(f"{trainer.cfg.TRAINER.NAME} has no trained prompts: export --kind text_features.")
    return export_features(trainer) if kind == "text_features" else export_prompts(trainer)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.export", description=__doc__.split("\n")[0])
    p.add_argument("run", nargs="?", default="", help="a training run's output directory")
    p.add_argument("--out", required=True, help="the file to write (.pt)")
    p.add_argument("--classnames", nargs="+", default=None,
                   help="class names (or one file, a name per line); default: the run's classes")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: best, else newest)")
    p.add_argument("--kind", choices=("auto", *KINDS), default="auto", help="artefact kind (default auto)")
    p.add_argument("--trainer", default="", help="without RUN: ZeroshotCLIP or ZeroshotCLIP2")
    p.add_argument("--backbone", default="", help="without RUN: the CLIP backbone")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    from .predict import run_classnames

    try:
        names = class_names_arg(args.classnames)
        if args.run:
            trainer = load_run(args.run, names or run_classnames(args.run, args.opts), args.load_epoch, args.opts)
        elif args.trainer and args.backbone and names:
            trainer = zeroshot_trainer(args.trainer, args.backbone, names, opts=args.opts)
        else:
            raise ValueError("Pass a run directory, or --trainer ZeroshotCLIP --backbone NAME --classnames ...")
        artefact = export(trainer, args.kind)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    atomic_torch_save(artefact, args.out)
    print(f"wrote {args.out}: {artefact['kind']} of {artefact['trainer']} for {len(artefact['classnames'])} classes",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
