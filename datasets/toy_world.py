"""The toy world: a procedural image-classification world that needs no download.

An image shows one main object (a coloured, filled or patterned shape of a given size) on a
textured background, sometimes next to a smaller distractor object. A photo is ordinary or
infrared (every object's hue rotated, which only a caption can reliably tell; see
`INFRARED_HUE_SHIFT`), and a benchmark's camera may tint it (`TINT_RGB`, which pretraining never
shows). Everything is drawn with numpy from a `Scene`, and a `Scene` is sampled from a
`numpy.random.Generator`, so the world is deterministic from a seed.

Two uses:
- benchmarks: `write_dataset(spec, root)` renders a labelled dataset (classes are combinations
  of attribute values, e.g. colour x shape -> "red circle") into the standard on-disk layout
  `<root>/<dataset_dir>/images/<class_folder>/<n>.png` plus a CoOp-format split file;
- pretraining: `caption_pairs(seed)` yields freshly sampled (image, caption) pairs whose captions
  mention the attributes, e.g. "a photo of a small red striped circle on a dotted background.".
  Its random stream is seeded differently from every benchmark's, so the pretraining images are
  never the benchmark's images.

CLI: `python -m datasets.toy_world --root DATA [--dataset ToyShapes]`.
"""
from __future__ import annotations

import argparse
import colorsys
import hashlib
import io
import itertools
import json
import logging
import math
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from engine.utils.checkpoint import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

IMAGE_SIZE = 64

# Hue (degrees), saturation, value of each colour word; "white" has no hue.
COLOURS = {
    "red": (0.0, 0.85, 0.85),
    "orange": (28.0, 0.9, 0.95),
    "yellow": (55.0, 0.85, 0.95),
    "green": (120.0, 0.75, 0.7),
    "blue": (222.0, 0.8, 0.85),
    "purple": (275.0, 0.7, 0.75),
    "pink": (325.0, 0.55, 0.95),
    "white": (0.0, 0.0, 0.97),
}
SHAPES = ("circle", "square", "triangle", "star", "heart", "cross")
PATTERNS = ("solid", "striped", "dotted", "checkered", "hollow")
BACKGROUNDS = ("plain", "striped", "dotted", "grid", "noisy")
SIZES = ("small", "large")

# False-colour ("infrared") photos: every object's hue is rotated by INFRARED_HUE_SHIFT degrees, which the image
# alone cannot reliably tell (a rotated red falls among ordinary oranges); only the caption's "infrared" says so.
# A benchmark photographed this way (ToyShapes) is misread by the hand-written prompt "a photo of a {}." and read
# correctly once the prompt says "infrared": the toy counterpart of a domain (satellite, texture, aircraft photos)
# that CoOp-style learned context captures and a generic hand-written template misses.
INFRARED_HUE_SHIFT = 20.0
INFRARED_TEMPLATES = (
    "an infrared photo of a {}.",
    "an infrared picture of a {}.",
    "an infrared image of a {}.",
    "a {} in infrared.",
)
# A tinted lens: a benchmark camera may blend every pixel with TINT_RGB (`Scene.tint` = the blend weight). No
# pretraining image is tinted and no caption names it, so no prompt word can describe it: the toy counterpart of a
# sensor or style that CLIP's pretraining never saw. The class-agnostic context of a text prompt cannot undo it (it
# can only re-weight the image features the frozen encoder computes); prompts inside the image encoder can.
TINT_RGB = (0.1, 0.3, 0.9)
CAPTION_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a rendering of a {}.",
    "a drawing of a {}.",
    "a {}.",
    "there is a {}.",
)


@dataclass(frozen=True)
class WorldParams:
    """Nuisance and caption-noise knobs shared by benchmarks and pretraining."""

    distractor_prob: float = 0.5
    position_jitter: float = 0.25  # main object's centre: uniform over this fraction of where it fits
    hue_jitter: float = 14.0  # degrees, uniform +-
    pattern_probs: tuple[float, ...] = (0.4, 0.15, 0.15, 0.15, 0.15)  # over PATTERNS
    pixel_noise: float = 0.04  # std of Gaussian pixel noise, in [0, 1] units
    caption_colour_noise: float = 0.05  # probability that a caption names a wrong colour
    infrared_prob: float = 0.3  # fraction of pretraining scenes photographed in infrared
    infrared_caption_prob: float = 0.9  # probability that the caption of an infrared scene says so


WORLD = WorldParams()


@dataclass(frozen=True)
class Object:
    """One drawn object; `centre`/`radius` in image units ([-1, 1] spans the image)."""

    colour: str
    shape: str
    pattern: str
    rgb: tuple[float, float, float]
    tone: tuple[float, float, float]  # second colour of a patterned fill
    centre: tuple[float, float]
    radius: float
    angle: float  # radians
    pattern_period: float  # pixels at IMAGE_SIZE
    pattern_angle: float


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw one image and caption it."""

    main: Object
    size: str
    background: str
    bg_rgb: tuple[float, float, float]
    bg_tone: tuple[float, float, float]
    bg_period: float
    bg_angle: float
    noise_seed: int
    pixel_noise: float
    distractor: Object | None = None
    infrared: bool = False
    tint: float = 0.0  # weight of TINT_RGB in every pixel (0 = an untinted photo)


def _hsv(hue: float, sat: float, val: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb((hue % 360.0) / 360.0, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))


def _sample_rgb(
    rng: np.random.Generator, colour: str, params: WorldParams, hue_shift: float
) -> tuple[float, float, float]:
    hue, sat, val = COLOURS[colour]
    hue += hue_shift + rng.uniform(-params.hue_jitter, params.hue_jitter)
    return _hsv(hue, sat + rng.uniform(-0.15, 0.1), val + rng.uniform(-0.2, 0.05))


def _pattern_tone(rng: np.random.Generator, rgb) -> tuple[float, float, float]:
    """A dark or light version of `rgb`, so a patterned fill keeps its hue."""
    rgb = np.asarray(rgb)
    tone = rgb * 0.3 if rng.random() < 0.5 else 0.35 * rgb + 0.65
    return tuple(float(c) for c in tone)


def _sample_object(rng, colour, shape, pattern, radius, centre, params, hue_shift) -> Object:
    rgb = _sample_rgb(rng, colour, params, hue_shift)
    return Object(
        colour=colour,
        shape=shape,
        pattern=pattern,
        rgb=rgb,
        tone=_pattern_tone(rng, rgb),
        centre=centre,
        radius=radius,
        angle=float(rng.uniform(-0.35, 0.35)),
        pattern_period=float(rng.uniform(9.0, 13.0)),
        pattern_angle=float(rng.uniform(0.0, math.pi)),
    )


def _choice(rng: np.random.Generator, values, p=None) -> str:
    return values[int(rng.choice(len(values), p=p))]


def sample_scene(
    rng: np.random.Generator,
    params: WorldParams = WORLD,
    colour: str | None = None,
    shape: str | None = None,
    pattern: str | None = None,
    infrared: bool | None = None,
    tint: float = 0.0,
) -> Scene:
    """Samples a scene; `colour`, `shape`, `pattern` fix the main object's attributes, `infrared` the photo type,
    `tint` the camera's lens tint (which draws nothing from `rng`).

    Left as None, `infrared` is drawn with probability `params.infrared_prob`. In an infrared photo every object's hue
    is rotated by `INFRARED_HUE_SHIFT` degrees (the background's hue is uniformly random, so rotating it would change
    nothing).
    """
    if infrared is None:
        infrared = bool(rng.random() < params.infrared_prob)
    hue_shift = INFRARED_HUE_SHIFT if infrared else 0.0
    colours = tuple(COLOURS)
    colour = colour or _choice(rng, colours)
    shape = shape or _choice(rng, SHAPES)
    pattern = pattern or _choice(rng, PATTERNS, p=params.pattern_probs)
    size = _choice(rng, SIZES)
    radius = float(rng.uniform(0.45, 0.58) if size == "large" else rng.uniform(0.28, 0.36))
    limit = (0.95 - radius) * params.position_jitter
    centre = (float(rng.uniform(-limit, limit)), float(rng.uniform(-limit, limit)))
    main = _sample_object(rng, colour, shape, pattern, radius, centre, params, hue_shift)

    background = _choice(rng, BACKGROUNDS)
    bg_rgb = _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.85))
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.16)
    bg_tone = tuple(float(np.clip(c + shift, 0.0, 1.0)) for c in bg_rgb)

    distractor = None
    if rng.random() < params.distractor_prob:
        d_radius = float(min(0.25, radius * rng.uniform(0.5, 0.7)))
        d_limit = 0.95 - d_radius
        for _ in range(10):
            d_centre = (float(rng.uniform(-d_limit, d_limit)), float(rng.uniform(-d_limit, d_limit)))
            if math.dist(d_centre, centre) > radius + d_radius:
                d_colour = _choice(rng, tuple(c for c in colours if c != colour))
                d_shape = _choice(rng, tuple(s for s in SHAPES if s != shape))
                distractor = _sample_object(rng, d_colour, d_shape, "solid", d_radius, d_centre, params, hue_shift)
                break
    return Scene(
        main=main,
        size=size,
        background=background,
        bg_rgb=bg_rgb,
        bg_tone=bg_tone,
        bg_period=float(rng.uniform(6.0, 12.0)),
        bg_angle=float(rng.uniform(0.0, math.pi)),
        noise_seed=int(rng.integers(2**31)),
        pixel_noise=params.pixel_noise,
        distractor=distractor,
        infrared=infrared,
        tint=tint,
    )


# ---------------------------------------------------------------------------------------------
# Drawing


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates `[H, W]` in image units, x to the right and y upwards."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    return coords[None, :].repeat(size, 0), -coords[:, None].repeat(size, 1)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test of a unit-radius shape in object coordinates `u, v` (y upwards)."""
    if shape == "circle":
        return u * u + v * v <= 0.81
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.72
    if shape == "triangle":  # equilateral, circumradius 1, apex up
        return (v >= -0.5) & (v <= 1.0 - math.sqrt(3.0) * np.abs(u))
    if shape == "star":  # five points, inner radius 0.45
        theta = np.mod(np.arctan2(v, u) - math.pi / 2, 2 * math.pi / 5) - math.pi / 5
        return np.hypot(u, v) <= 1.0 - 0.55 * np.abs(theta) / (math.pi / 5)
    if shape == "heart":  # (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, scaled into the unit disc
        x, y = u * 1.25, v * 1.25 + 0.1
        return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.9)) | ((av <= 0.3) & (au <= 0.9))
    raise ValueError(f"unknown toy shape {shape!r}; expected one of {SHAPES}")


def _texture(kind: str, x: np.ndarray, y: np.ndarray, period: float, angle: float, size: int) -> np.ndarray:
    """Boolean `[H, W]` map of where the second tone of a texture shows (`period` in pixels)."""
    px, py = x * size / 2.0, y * size / 2.0
    a = px * math.cos(angle) + py * math.sin(angle)
    b = -px * math.sin(angle) + py * math.cos(angle)
    if kind == "striped":
        return np.mod(a, period) < period / 2
    if kind == "dotted":
        da, db = np.mod(a, period) - period / 2, np.mod(b, period) - period / 2
        return da * da + db * db <= (period * 0.28) ** 2
    if kind == "checkered":
        return (np.floor(a / (period * 0.6)) + np.floor(b / (period * 0.6))) % 2 == 0
    if kind == "grid":
        return (np.mod(a, period) < 1.2) | (np.mod(b, period) < 1.2)
    raise ValueError(f"unknown toy texture {kind!r}")


def _draw_object(img: np.ndarray, obj: Object, x: np.ndarray, y: np.ndarray, size: int) -> None:
    cos, sin = math.cos(obj.angle), math.sin(obj.angle)
    dx, dy = (x - obj.centre[0]) / obj.radius, (y - obj.centre[1]) / obj.radius
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    inside = _shape_mask(obj.shape, u, v)
    if obj.pattern == "hollow":
        inside &= ~_shape_mask(obj.shape, u / 0.6, v / 0.6)
    img[inside] = obj.rgb
    if obj.pattern in ("striped", "dotted", "checkered"):
        second = _texture(obj.pattern, x, y, obj.pattern_period, obj.pattern_angle, size)
        img[inside & second] = obj.tone


def render(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """Draws `scene` as a uint8 RGB image `[size, size, 3]` (a pure function of `scene`)."""
    x, y = _grid(size)
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = scene.bg_rgb
    noise_rng = np.random.default_rng(scene.noise_seed)
    if scene.background == "noisy":
        blobs = noise_rng.random((size // 4, size // 4)) < 0.5
        img[np.kron(blobs, np.ones((4, 4), dtype=bool))] = scene.bg_tone
    elif scene.background != "plain":
        img[_texture(scene.background, x, y, scene.bg_period, scene.bg_angle, size)] = scene.bg_tone
    if scene.distractor is not None:
        _draw_object(img, scene.distractor, x, y, size)
    _draw_object(img, scene.main, x, y, size)
    img += noise_rng.normal(0.0, scene.pixel_noise, img.shape).astype(np.float32)
    img = np.clip(img, 0.0, 1.0)
    if scene.tint:
        img = (1.0 - scene.tint) * img + np.float32(scene.tint) * np.asarray(TINT_RGB, dtype=np.float32)
    return (img * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Captions (pretraining)


def caption(scene: Scene, rng: np.random.Generator, params: WorldParams = WORLD) -> str:
    """A caption naming the main object's shape and a random subset of its other attributes.

    e.g. "a photo of a small red striped circle on a dotted background next to a blue star."
    With probability `params.caption_colour_noise` the colour word is wrong. Colour words name the object's colour,
    not its appearance: the caption of an infrared photo says "infrared" (with probability
    `params.infrared_caption_prob`), e.g. "an infrared photo of a red circle." for an orange-looking circle.
    """
    main = scene.main
    colour = main.colour
    if rng.random() < params.caption_colour_noise:
        colour = _choice(rng, tuple(c for c in COLOURS if c != colour))
    words = []
    if rng.random() < 0.4:
        words.append(scene.size)
    if rng.random() < 0.85:
        words.append(colour)
    if rng.random() < (0.85 if main.pattern != "solid" else 0.2):
        words.append(main.pattern)
    words.append(main.shape)
    phrase = " ".join(words)
    if rng.random() < 0.4:
        phrase += f" on a {scene.background} background"
    if scene.distractor is not None and rng.random() < 0.4:
        phrase += f" next to a {scene.distractor.colour} {scene.distractor.shape}"
    if scene.infrared and rng.random() < params.infrared_caption_prob:
        return _choice(rng, INFRARED_TEMPLATES).format(phrase)
    return _choice(rng, CAPTION_TEMPLATES).format(phrase)


PRETRAIN_STREAM = 1_000_003  # tag that keeps the pretraining stream apart from benchmark streams


def caption_pairs(seed: int, params: WorldParams = WORLD, size: int = IMAGE_SIZE) -> Iterator[tuple[np.ndarray, str]]:
    """Endless (uint8 image `[size, size, 3]`, caption) pairs of fresh scenes, deterministic in `seed`."""
    rng = np.random.default_rng([seed, PRETRAIN_STREAM])
    while True:
        scene = sample_scene(rng, params)
        yield render(scene, size), caption(scene, rng, params)


def vocabulary() -> list[str]:
    """Every word a toy caption or class name can contain."""
    words = {w for t in CAPTION_TEMPLATES + INFRARED_TEMPLATES for w in t.replace("{}", " ").replace(".", " ").split()}
    words |= set(COLOURS) | set(SHAPES) | set(PATTERNS) | set(BACKGROUNDS) | set(SIZES)
    words |= {"on", "background", "next", "to", "a"}
    return sorted(words)


# ---------------------------------------------------------------------------------------------
# Benchmarks


@dataclass(frozen=True)
class ToyClass:
    name: str  # "red circle"
    attributes: dict = field(hash=False)  # {"colour": "red", "shape": "circle"}

    @property
    def folder(self) -> str:
        return self.name.replace(" ", "_")


INFRARED_CLASSES = ("none", "all", "base")


@dataclass(frozen=True)
class ToyDatasetSpec:
    """A labelled toy dataset: classes are all pairs of `first` x `second` attribute values.

    Classes are ordered so that the base half (the first ceil(n/2) labels) is the checkerboard
    `(i + j) % 2 == 0` of the value grid: every attribute value occurs in both halves, so each new
    class is an unseen combination of seen attribute values.
    """

    name: str
    dataset_dir: str
    first: tuple[str, tuple[str, ...]]  # (attribute, values), e.g. ("colour", ("red", ...))
    second: tuple[str, tuple[str, ...]]
    infrared: str = "none"  # which classes are photographed in infrared: "none", "all" or "base" (INFRARED_HUE_SHIFT)
    tint: float = 0.0  # the camera's lens tint, the same for every image (TINT_RGB)
    world_seed: int = 0
    num_train: int = 40
    num_val: int = 10
    num_test: int = 30

    def __post_init__(self):
        if self.infrared not in INFRARED_CLASSES:
            raise ValueError(f"{self.name}: infrared must be one of {INFRARED_CLASSES}; got {self.infrared!r}")

    @property
    def split_file(self) -> str:
        return f"split_zhou_{self.name}.json"

    @property
    def num_base(self) -> int:
        """Size of the base half: the first ceil(n/2) labels (CoOp's `subsample_classes`)."""
        return math.ceil(len(self.classes) / 2)

    def is_infrared(self, label: int) -> bool:
        return self.infrared == "all" or (self.infrared == "base" and label < self.num_base)

    @property
    def classes(self) -> list[ToyClass]:
        (key1, values1), (key2, values2) = self.first, self.second
        cells = list(itertools.product(range(len(values1)), range(len(values2))))
        ordered = [c for c in cells if sum(c) % 2 == 0] + [c for c in cells if sum(c) % 2 == 1]
        return [
            ToyClass(f"{values1[i]} {values2[j]}", {key1: values1[i], key2: values2[j]}) for i, j in ordered
        ]


TOY_SHAPES = ToyDatasetSpec(
    name="ToyShapes",
    dataset_dir="toy_shapes",
    first=("colour", ("red", "orange", "yellow", "green", "blue", "purple")),
    second=("shape", ("circle", "square", "triangle", "star", "heart")),
    infrared="all",
)
TOY_DATASETS = {
    spec.name: spec
    for spec in (
        TOY_SHAPES,
        replace(TOY_SHAPES, name="ToyTinted", dataset_dir="toy_tinted", infrared="base", tint=0.3),
        ToyDatasetSpec(
            name="ToyPatterns",
            dataset_dir="toy_patterns",
            first=("pattern", ("solid", "striped", "dotted", "checkered", "hollow")),
            second=("shape", ("circle", "square", "triangle", "star", "cross")),
        ),
    )
}


def get_spec(name: str) -> ToyDatasetSpec:
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {sorted(TOY_DATASETS)}")
    return TOY_DATASETS[name]


def _class_rng(spec: ToyDatasetSpec, label: int) -> np.random.Generator:
    return np.random.default_rng([spec.world_seed, zlib.crc32(spec.name.encode()), label])


def _class_images(spec: ToyDatasetSpec, label: int) -> Iterator[np.ndarray]:
    rng = _class_rng(spec, label)
    attributes = spec.classes[label].attributes
    while True:
        yield render(sample_scene(rng, infrared=spec.is_infrared(label), tint=spec.tint, **attributes))


def generate_split(spec: ToyDatasetSpec) -> Iterator[tuple[str, int, str, str, np.ndarray]]:
    """Yields `(split, label, classname, relpath, image)` for every image of the dataset."""
    counts = (("train", spec.num_train), ("val", spec.num_val), ("test", spec.num_test))
    for label, cls in enumerate(spec.classes):
        images = _class_images(spec, label)
        index = 0
        for split, count in counts:
            for _ in range(count):
                yield split, label, cls.name, f"{cls.folder}/{index:04d}.png", next(images)
                index += 1


FINGERPRINT_FILE = "toy_world.json"


def fingerprint(spec: ToyDatasetSpec) -> str:
    """Identity of what `write_dataset(spec)` writes: SHA-256 of the spec and of each class's first image.

    Any change to the spec or to the generator (drawing, sampling, parameters) changes it.
    """
    digest = hashlib.sha256(repr(spec).encode())
    for label in range(len(spec.classes)):
        digest.update(next(_class_images(spec, label)).tobytes())
    return digest.hexdigest()


def is_rendered(spec: ToyDatasetSpec, root: str | Path) -> bool:
    """True if `<root>/<dataset_dir>` holds a complete rendering by the current generator."""
    dataset_dir = Path(root) / spec.dataset_dir
    try:
        recorded = json.loads((dataset_dir / FINGERPRINT_FILE).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == fingerprint(spec) and (dataset_dir / spec.split_file).is_file()


def ensure_rendered(spec: ToyDatasetSpec, root: str | Path) -> bool:
    """Renders `spec` under `root` unless the current generator already did (`is_rendered`); True if it rendered."""
    if is_rendered(spec, root):
        return False
    log.warning("%s: rendering the toy world into %s (procedural and deterministic, no download; a few seconds).",
                spec.name, Path(root) / spec.dataset_dir)
    write_dataset(spec, root)
    return True


def write_dataset(spec: ToyDatasetSpec, root: str | Path) -> dict:
    """Writes `<root>/<dataset_dir>/images/<class>/<n>.png` and the split file; returns the split.

    The split is `{"train"|"val"|"test": [[relpath, label, classname], ...]}`, relpaths relative
    to the `images` folder (CoOp's `split_zhou_*.json` format).
    Every file is written to a temporary name and renamed, so concurrent runs never read half a file;
    `toy_world.json` (the generator's `fingerprint`) is written last and marks a complete rendering.
    """
    dataset_dir = Path(root) / spec.dataset_dir
    image_dir = dataset_dir / "images"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for name, label, classname, relpath, image in generate_split(spec):
        png = io.BytesIO()
        Image.fromarray(image).save(png, format="PNG")
        atomic_write_bytes(png.getvalue(), str(image_dir / relpath))
        split[name].append([relpath, label, classname])
    atomic_write_text(json.dumps(split), str(dataset_dir / spec.split_file))
    atomic_write_text(json.dumps({"dataset": spec.name, "fingerprint": fingerprint(spec)}),
                      str(dataset_dir / FINGERPRINT_FILE))
    return split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets.toy_world",
                                     description="Render the toy-world benchmarks (no download).")
    parser.add_argument("--root", required=True, help="dataset root (cfg.DATASET.ROOT)")
    parser.add_argument("--dataset", choices=sorted(TOY_DATASETS), help="one dataset (default: all)")
    args = parser.parse_args(argv)
    for name in [args.dataset] if args.dataset else sorted(TOY_DATASETS):
        spec = TOY_DATASETS[name]
        start = time.time()
        try:
            split = write_dataset(spec, args.root)
        except OSError as e:
            print(f"error: cannot write {name} under --root {args.root}: {e.strerror or e}. Give a folder you can "
                  f"write to.", file=sys.stderr)
            return 2
        sizes = ", ".join(f"{k} {len(v)}" for k, v in split.items())
        print(
            f"{name}: {len(spec.classes)} classes ({sizes}) -> "
            f"{Path(args.root) / spec.dataset_dir} in {time.time() - start:.1f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
