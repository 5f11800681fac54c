"""Toy-world benchmarks: procedurally generated, no download, for CI, laptops and smoke runs.

- ``ToyShapes``: 30 classes "<colour> <shape>" (6 colours x 5 shapes), e.g. "red circle", every image an infrared
  photo: a domain the hand-written prompt "a photo of a {}." does not describe (docs/TOY.md);
- ``ToyTinted`` (the demo's default): ToyShapes' 30 classes photographed through a tinted lens that pretraining
  never saw, the base classes in infrared and the new classes not: prompt learning trades new-class accuracy for
  base accuracy, as on the real benchmarks (docs/TOY.md, "ToyTinted");
- ``ToyPatterns``: 25 classes "<fill pattern> <shape>" (5 patterns x 5 shapes), e.g. "striped star";
  a different class vocabulary over the same world, for cross-dataset transfer.

In both, the base half (first ceil(n/2) labels) is a checkerboard of the attribute grid, so every
new class is an unseen combination of attribute values seen in base classes. Layout and split are
those of every benchmark (``<dataset_dir>/images/<class>/<n>.png``, ``split_zhou_<Name>.json``);
on first use the world is rendered under ``DATASET.ROOT`` (deterministic, a few seconds). The
generator and the class definitions live in :mod:`datasets.toy_world`.
"""
import os

from engine.registry import DATASET_REGISTRY

from .base import BenchmarkDataset

class ToyBenchmark(BenchmarkDataset):
    """A toy-world benchmark, defined by ``datasets.toy_world.TOY_DATASETS[<class name>]``.

    A folder rendered by another version of the generator (its ``toy_world.json`` fingerprint differs) is rendered
    again, so images always match the generator and the numbers recorded for the committed toyclip.
    ``datasets.toy_world`` is imported only when needed: importing it here (the package imports this module) would
    make ``python -m datasets.toy_world`` warn that the module was already imported.
    """

    image_dir = "images"

    def __init__(self, cfg):
        if cfg.DATASET.ROOT:  # an empty ROOT is reported by the base
            from .toy_world import ensure_rendered, get_spec

            ensure_rendered(get_spec(type(self).__name__), os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)))
        super().__init__(cfg)

    def download_command(self) -> str:
        return f"python -m datasets.toy_world --root {self.root} --dataset {self.name}"

    def download_hint(self) -> str:
        return f"Delete {self.dataset_dir} and render it again with: {self.download_command()}"


@DATASET_REGISTRY.register()
class ToyShapes(ToyBenchmark):
    dataset_dir = "toy_shapes"
    split_file = "split_zhou_ToyShapes.json"
    stem = "toy_shapes"


@DATASET_REGISTRY.register()
class ToyPatterns(ToyBenchmark):
    dataset_dir = "toy_patterns"
    split_file = "split_zhou_ToyPatterns.json"
    stem = "toy_patterns"


@DATASET_REGISTRY.register()
class ToyTinted(ToyBenchmark):
    dataset_dir = "toy_tinted"
    split_file = "split_zhou_ToyTinted.json"
    stem = "toy_tinted"
