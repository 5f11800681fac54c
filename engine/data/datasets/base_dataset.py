"""Dassl's data records: ``Datum`` (one labelled image) and ``DatasetBase`` (the train/val/test lists of a benchmark).

Same names, signatures and derived properties as ``dassl/data/datasets/base_dataset.py`` (docs/OFFICIAL_CODE.md),
with two deliberate differences:

- ``Datum`` does not look at the disk when it is built (Dassl stats every path and only warns), so building a million
  ImageNet records costs no I/O. Missing images are reported by the dataset (a bounded check) and by
  the loader (``engine.data.read_image``) when it opens them.
- ``generate_fewshot_dataset`` draws from a ``random.Random`` passed as ``rng`` instead of Python's global ``random``.
  Given ``rng = random.Random(seed)``, it makes exactly the calls Dassl makes after ``random.seed(seed)``, in the
  same order, so it picks the same items.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence


class DatasetError(RuntimeError):
    """A dataset that cannot be loaded as configured; the message says what is wrong and how to fix it."""


class MissingDataError(DatasetError, FileNotFoundError):
    """A dataset folder, split file, annotation file or image that is not where it should be."""


class Datum:
    """One labelled image: ``impath`` (str), ``label`` (int), ``domain`` (int), ``classname`` (str). Immutable."""

    __slots__ = ("_impath", "_label", "_domain", "_classname")

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        if not isinstance(impath, str):
            raise TypeError(f"Datum.impath must be a str path, got {type(impath).__name__}: {impath!r}")
        object.__setattr__(self, "_impath", impath)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_domain", domain)
        object.__setattr__(self, "_classname", classname)

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def __setattr__(self, name, value):
        raise AttributeError(f"Datum is immutable; build a new Datum instead of setting {name!r}.")

    def __reduce__(self):
        return (Datum, (self._impath, self._label, self._domain, self._classname))

    def _key(self):
        return (self._impath, self._label, self._domain, self._classname)

    def __eq__(self, other):
        return isinstance(other, Datum) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, "
                f"classname={self._classname!r})")


class DatasetBase:
    """The labelled (``train_x``), unlabelled (``train_u``), validation and test lists of a dataset.

    ``num_classes`` (max label + 1), ``lab2cname`` and ``classnames`` (sorted by label) are all derived from
    ``train_x``, as in Dassl; so after base/new subsampling the class set is exactly the subsampled one.
    """

    dataset_dir = ""  # folder of the dataset under DATASET.ROOT
    domains: List[str] = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x or [])
        self._lab2cname, self._classnames = self.get_lab2cname(train_x or [])

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> List[str]:
        return self._classnames

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def shots_per_class(self) -> Dict[str, int]:
        """``{classname: number of train_x items}`` in label order: the shots each class actually trains on.

        With ``DATASET.NUM_SHOTS = k`` a class with fewer than ``k`` training items keeps all of them
        (:meth:`generate_fewshot_dataset`), so this, not ``k``, is what a run used. A classname shared by two labels
        is keyed ``"<classname> (<label>)"`` so no count is lost.
        """
        counts = defaultdict(int)
        for item in self._train_x or []:
            counts[item.label] += 1
        labels = sorted(counts)
        uses = Counter(self._lab2cname[label] for label in labels)
        return {self._lab2cname[label] if uses[self._lab2cname[label]] == 1 else f"{self._lab2cname[label]} ({label})":
                counts[label] for label in labels}

    @staticmethod
    def get_num_classes(data_source: Sequence[Datum]) -> int:
        """Max label + 1 (0 for an empty list)."""
        return max((item.label for item in data_source), default=-1) + 1

    @staticmethod
    def get_lab2cname(data_source: Sequence[Datum]):
        """``({label: classname}, [classname of each label in sorted label order])``."""
        mapping = {item.label: item.classname for item in data_source}
        return mapping, [mapping[label] for label in sorted(mapping)]

    def generate_fewshot_dataset(self, *data_sources, num_shots: int = -1, repeat: bool = False,
                                 rng: Optional[random.Random] = None):
        """Keep ``num_shots`` items per class of each list in ``data_sources`` (Dassl's procedure, exactly).

        Labels are visited in first-appearance order; each class draws ``rng.sample(items, num_shots)``. A class with
        fewer items keeps all of them, or draws ``rng.choices(items, k=num_shots)`` when ``repeat``. ``num_shots < 1``
        returns the input unchanged. One list in, one list out; several in, a list of lists out.

        ``repeat`` defaults to False as in Dassl's ``DatasetBase.generate_fewshot_dataset`` (CoOp never passes
        it). It only matters for classes with fewer than ``num_shots`` items, which none of the 11 benchmarks has at
        16 training shots or 4 validation shots. ``rng=None`` uses a fresh unseeded generator.
        """
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else list(data_sources)
        rng = rng if rng is not None else random.Random()
        output = []
        for data_source in data_sources:
            picked = []
            for items in self.split_dataset_by_label(data_source).values():
                if len(items) >= num_shots:
                    picked.extend(rng.sample(items, num_shots))
                elif repeat:
                    picked.extend(rng.choices(items, k=num_shots))
                else:
                    picked.extend(items)
            output.append(picked)
        return output[0] if len(output) == 1 else output

    @staticmethod
    def split_dataset_by_label(data_source: Sequence[Datum]) -> Dict[int, List[Datum]]:
        """``{label: [items]}`` with labels in first-appearance order and items in input order."""
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    @staticmethod
    def split_dataset_by_domain(data_source: Sequence[Datum]) -> Dict[int, List[Datum]]:
        """``{domain: [items]}`` with domains in first-appearance order."""
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output
