"""Image transforms (Dassl's ``build_transform``) for the choices the CoOp family uses.

Training, in Dassl's fixed order: ``Resize(SIZE)`` only when no random crop is chosen, then
``random_crop`` / ``random_resized_crop(SIZE, scale=RRCROP_SCALE)``, ``random_flip``, ``ToTensor``,
``normalize(PIXEL_MEAN, PIXEL_STD)``. Test (always): resize the shorter side to ``max(SIZE)``, ``CenterCrop(SIZE)``,
``ToTensor``, normalise if chosen - OpenAI CLIP's preprocessing once bicubic and CLIP statistics are set.
"""
from __future__ import annotations

import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}
AVAILABLE_TRANSFORMS = ("random_flip", "random_resized_crop", "normalize", "random_crop", "center_crop",
                        "colorjitter", "randomgrayscale", "gaussian_blur")


def build_transform(cfg, is_train: bool = True, choices=None) -> T.Compose:
    if cfg.INPUT.NO_TRANSFORM:
        return T.Compose([T.ToTensor()])
    choices = tuple(cfg.INPUT.TRANSFORMS if choices is None else choices)
    unknown = [c for c in choices if c not in AVAILABLE_TRANSFORMS]
    if unknown:
        raise ValueError(f"Unknown INPUT.TRANSFORMS {unknown}; available: {', '.join(AVAILABLE_TRANSFORMS)}.")
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(f'Unknown INPUT.INTERPOLATION "{cfg.INPUT.INTERPOLATION}"; '
                         f"choose one of {', '.join(INTERPOLATION_MODES)}.")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = tuple(cfg.INPUT.SIZE)
    normalize = [T.Normalize(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)] if "normalize" in choices else []
    if not is_train:
        return T.Compose([T.Resize(max(size), interpolation=interp), T.CenterCrop(size), T.ToTensor(), *normalize])
    tfm = []
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        tfm.append(T.Resize(size, interpolation=interp))
    if "random_crop" in choices:
        tfm.append(T.RandomCrop(size, padding=cfg.INPUT.CROP_PADDING))
    if "random_resized_crop" in choices:
        tfm.append(T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.RRCROP_SCALE), interpolation=interp))
    if "center_crop" in choices:
        tfm.append(T.CenterCrop(size))
    if "random_flip" in choices:
        tfm.append(T.RandomHorizontalFlip())
    if "colorjitter" in choices:
        i = cfg.INPUT
        tfm.append(T.ColorJitter(i.COLORJITTER_B, i.COLORJITTER_C, i.COLORJITTER_S, i.COLORJITTER_H))
    if "randomgrayscale" in choices:
        tfm.append(T.RandomGrayscale(p=cfg.INPUT.RGS_P))
    if "gaussian_blur" in choices:
        tfm.append(T.RandomApply([T.GaussianBlur(cfg.INPUT.GB_K)], p=cfg.INPUT.GB_P))
    return T.Compose([*tfm, T.ToTensor(), *normalize])
