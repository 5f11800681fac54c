"""Export a trained run as the smallest artefact that serves it elsewhere.

    python -m tools.export output/mydata/CoOp/seed1 --out coop_mydata.pt --classname cat --classname "red fox"
    python -m tools.export --trainer ZeroshotCLIP --backbone ViT-B/16 --classnames-file names.txt --out zs.pt

Class names: ``--classname NAME`` once per class and/or ``--classnames-file FILE`` (one per line); default: the
run's classes (or, for an export file given as the run, the names stored in it). Two kinds, chosen from the trained
model:

- ``text_features``: when the class text features do not depend on the image and the image encoder is CLIP's own
  (CoOp, LAMM over CLIP or CoOp, Nemesis over CoOp, IVLP without vision prompts, zero-shot CLIP). The file holds
  ``text_features [C, D]`` (fp32, L2-normalised, computed by the trainer for the class names), ``logit_scale``
  (``exp`` applied, CLIP's own), ``classnames``, the backbone's name (``backbone``) and what plain open_clip needs
  to build its image encoder (``open_clip``, :func:`open_clip_recipe`: ``{"arch", "pretrained"}`` for a public
  model; ``{"model_cfg", "visual"}``, the architecture and the image tower's weights, for toyclip and other
  backbones without a public name; ``None`` for a checkpoint file, whose loader ``tools.export`` prints). Plain
  open_clip then classifies with ``logit_scale * normalize(model.encode_image(x)) @ text_features.T`` (README,
  "Your own data").
- ``prompts``: for every other method (image-conditioned text, prompted or adapted image encoder). The file holds
  each trained module's state (the registered modules' tensors and extra checkpoint values) and the config keys
  that rebuild the trainer (``TRAINER``, ``MODEL``, ``INPUT``, ``DATASET.NAME``/``TEMPLATE``). ``tools.predict
  --model-dir FILE`` serves it, for its stored class names or any others.

Both kinds are bound to the backbone weights they were made with: ``visual_sha256`` (the image encoder) and
``backbone_sha256`` (the whole CLIP), :func:`weights_sha256` of the fp32 weights. ``tools.predict`` refuses a
``prompts`` file whose backbone digest differs from the weights it loads, and the README snippet refuses an image
encoder whose digest differs. Files are written atomically and load with ``torch.load(path, weights_only=True)``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F

from engine.errors import user_error_types
from engine.utils import atomic_torch_save

from .trained_model import (add_class_name_arguments, check_opts, class_names_from_args, load_run, text_side,
                            zeroshot_trainer)

logger = logging.getLogger("export")

FORMAT_VERSION = 2  # 2: weight digests, and toyclip's image tower for plain open_clip
KINDS = ("text_features", "prompts")
CONFIG_KEYS = ("TRAINER", "MODEL", "INPUT")


def open_clip_identity(backbone_name: str) -> Optional[dict]:
    """``{"arch", "pretrained"}`` for ``open_clip.create_model_and_transforms`` when the backbone has a public name
    (OpenAI's, or an open_clip ``ARCH:TAG`` whose weights open_clip fetches by that tag)."""
    from clip.loading import OPENAI_MODELS

    if backbone_name in OPENAI_MODELS:
        return {"arch": OPENAI_MODELS[backbone_name][0], "pretrained": "openai"}
    if ":" in backbone_name and not backbone_name.startswith("random:"):
        arch, pretrained = backbone_name.split(":", 1)
        if not os.path.exists(pretrained):
            return {"arch": arch, "pretrained": pretrained}
    return None


def architecture_config(backbone_name: str) -> Optional[dict]:
    """The open_clip model config (``open_clip.CLIP(**config)``) of a backbone without a public name: toyclip's
    (stored in its checkpoint), a ``random:ARCH`` or ``random:config.json`` one, or ``ARCH:/path/to/weights``;
    ``None`` for a checkpoint file (its architecture is read from its tensors by ``open_clip.load_openai_model``)."""
    import open_clip

    if backbone_name == "toyclip":
        from clip.toyclip import DEFAULT_PATH

        return torch.load(DEFAULT_PATH, map_location="cpu", weights_only=True)["config"]
    if backbone_name.startswith("random:"):
        spec = backbone_name[len("random:"):]
        if spec.endswith(".json"):
            with open(spec) as f:
                config = json.load(f)
            return config.get("model_cfg", config)
        return open_clip.get_model_config(spec)
    if ":" in backbone_name and not os.path.isfile(backbone_name):
        return open_clip.get_model_config(backbone_name.split(":", 1)[0])
    return None


def open_clip_recipe(backbone_name: str, model: torch.nn.Module) -> Optional[dict]:
    """What plain open_clip needs to build the image encoder of a ``text_features`` export: a public name
    (:func:`open_clip_identity`), else the architecture config and the image tower's fp32 state dict
    (``{"model_cfg", "visual"}``; the README snippet builds ``open_clip.CLIP(**model_cfg)`` and loads ``visual``
    into ``model.visual``), else ``None`` (a checkpoint file: ``open_clip.load_openai_model(path)``)."""
    identity = open_clip_identity(backbone_name)
    if identity is not None:
        return identity
    config = architecture_config(backbone_name)
    if config is None:
        return None
    return {"model_cfg": config, "visual": {k: v.detach().float().cpu().clone()
                                            for k, v in model.visual.state_dict().items()}}


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
    model = backbone_fp32(trainer)
    return {
        "format": FORMAT_VERSION, "kind": "text_features", "trainer": cfg.TRAINER.NAME,
        "classnames": list(trainer.dm.dataset.classnames),
        "text_features": class_text_features(trainer),
        "logit_scale": float(trainer.logit_scale),
        "backbone": cfg.MODEL.BACKBONE.NAME, "open_clip": open_clip_recipe(cfg.MODEL.BACKBONE.NAME, model),
        "visual_sha256": weights_sha256(model.visual), "backbone_sha256": weights_sha256(model),
    }


def export_prompts(trainer) -> dict:
    modules = {}
    for name in trainer.get_model_names():
        state = {k: v.detach().cpu() for k, v in trainer.model_state_dict(name).items()}
        modules[name] = {"state_dict": state, **trainer.extra_checkpoint_state(name)}
    model = backbone_fp32(trainer)
    return {
        "format": FORMAT_VERSION, "kind": "prompts", "trainer": trainer.cfg.TRAINER.NAME,
        "classnames": list(trainer.dm.dataset.classnames), "config": minimal_config(trainer.cfg),
        "modules": modules, "backbone": trainer.cfg.MODEL.BACKBONE.NAME,
        "open_clip": open_clip_identity(trainer.cfg.MODEL.BACKBONE.NAME),
        "visual_sha256": weights_sha256(model.visual), "backbone_sha256": weights_sha256(model),
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


def serving_note(artefact: dict, path: str) -> str:
    """How the written file is served, printed by ``tools.export``."""
    if artefact["kind"] == "prompts":
        return (f"serve it with: python -m tools.predict --model-dir {path} IMAGES (this project, and the weights of "
                f"backbone {artefact['backbone']!r}; their digest is checked)")
    recipe = artefact["open_clip"]
    if recipe is None:
        return (f"backbone {artefact['backbone']!r} is a checkpoint file, which open_clip cannot build by name: in "
                "the README snippet (\"Your own data\", step 4), build the model with "
                f"model = open_clip.load_openai_model({artefact['backbone']!r}).float() and preprocess = "
                "open_clip.image_transform(model.visual.image_size, is_train=False); the digest check is the same")
    if "visual" in recipe:
        size = sum(t.numel() * t.element_size() for t in recipe["visual"].values()) / 1e6
        return (f"backbone {artefact['backbone']!r} has no open_clip name, so the file carries its architecture and "
                f"image-encoder weights ({size:.1f} MB); plain open_clip serves it with the README snippet "
                "(\"Your own data\", step 4)")
    return (f"plain open_clip serves it with the README snippet (\"Your own data\", step 4): it builds "
            f"{recipe['arch']!r} with pretrained={recipe['pretrained']!r} and checks the image encoder's digest")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.export", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("run", nargs="?", default="", help="a training run's output directory (or a prompts export)")
    p.add_argument("--out", required=True, help="the file to write (.pt)")
    add_class_name_arguments(p, "the run's classes")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: best, else newest)")
    p.add_argument("--kind", choices=("auto", *KINDS), default="auto", help="artefact kind (default auto)")
    p.add_argument("--trainer", default="", help="without RUN: ZeroshotCLIP or ZeroshotCLIP2")
    p.add_argument("--backbone", default="", help="without RUN: the CLIP backbone")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ..., last on the line")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    from .predict import run_classnames

    try:
        names = class_names_from_args(args)
        opts = check_opts(args.opts)
        if args.run and os.path.isfile(args.run):
            trainer = load_run(args.run, names, args.load_epoch, opts)
        elif args.run:
            trainer = load_run(args.run, names or run_classnames(args.run, opts), args.load_epoch, opts)
        elif args.trainer and args.backbone and names:
            trainer = zeroshot_trainer(args.trainer, args.backbone, names, opts=opts)
        else:
            raise ValueError("Pass a run directory, or --trainer ZeroshotCLIP --backbone NAME and the class names "
                             "(--classname NAME once per class, or --classnames-file FILE).")
        artefact = export(trainer, args.kind)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, *user_error_types()) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    atomic_torch_save(artefact, args.out)
    print(f"wrote {args.out}: {artefact['kind']} of {artefact['trainer']} for {len(artefact['classnames'])} classes; "
          f"{serving_note(artefact, args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
