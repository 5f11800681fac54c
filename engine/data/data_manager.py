"""DataManager (Dassl's): builds the dataset from the registry, its transforms and its loaders.

Batches are dicts ``{"img": [B, 3, H, W], "label": [B], "domain": [B], "impath": [B], "index": [B]}``.
The training loader drops its last incomplete batch only when the set holds at least one full batch (Dassl's rule,
so a tiny few-shot set never gives an empty loader).
"""
from __future__ import annotations

import logging
import warnings

import torch
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from engine.registry import DATASET_REGISTRY

from .transforms import build_transform

logger = logging.getLogger(__name__)


class ImageReadError(RuntimeError):
    """An image that cannot be used (missing, corrupt, truncated, not an image, a decompression bomb); one line.

    Raised in a ``DataLoader`` worker, torch re-raises it in the main process as ``ImageReadError(<"Caught ...
    Original Traceback ...">)`` (``torch.utils._utils.ExceptionWrapper.reraise``); the message is cut back to the
    original one line, so the user never sees the worker's traceback.
    """

    def __init__(self, message: str = ""):
        if isinstance(message, str) and "\nOriginal Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def read_image(path: str) -> Image.Image:
    """Open an image as RGB: the one image-reading policy of training, evaluation, prediction and folder splits.

    A missing file, a file PIL cannot decode (corrupt, truncated, not an image) and a decompression bomb (more
    pixels than ``PIL.Image.MAX_IMAGE_PIXELS``; PIL only warns below twice that limit, and raises
    ``DecompressionBombError``, which is not an ``OSError``, above it) each raise one :class:`ImageReadError`
    naming the file, never another exception.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"Image not found: {path}. Is DATASET.ROOT right, and is the dataset complete? "
                             "`python -m datasets.download --check` lists what is missing.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"Refusing image {path}: {e} Remove it from the dataset (or shrink it).") from None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, EOFError... for bad files
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageReadError(f"Cannot read image {path} ({detail}); the file is corrupt, truncated or not an "
                             "image. Re-download or remove it.") from None


def build_dataset(cfg):
    import datasets  # noqa: F401  (registers the benchmarks)

    if not cfg.DATASET.NAME:
        raise ValueError("DATASET.NAME is empty: pass --dataset-config-file configs/datasets/<name>.yaml.")
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


class DatasetWrapper(Dataset):
    def __init__(self, cfg, data_source, transform=None, is_train=False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0

    def __len__(self):
        return len(self.data_source)

    def __getitem__(self, idx):
        item = self.data_source[idx]
        img0 = read_image(item.impath)
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        if self.transform is None:
            output["img"] = img0
        elif self.k_tfm > 1:
            output["img"] = [self.transform(img0) for _ in range(self.k_tfm)]
        else:
            output["img"] = self.transform(img0)
        return output


def build_data_loader(cfg, sampler_type="SequentialSampler", data_source=None, batch_size=64, tfm=None,
                      is_train=True, dataset_wrapper=None, generator=None):
    if not data_source:
        raise ValueError("Cannot build a data loader over an empty split.")
    wrapper = (dataset_wrapper or DatasetWrapper)(cfg, data_source, transform=tfm, is_train=is_train)
    if sampler_type == "RandomSampler":
        sampler = RandomSampler(wrapper, generator=generator)
    elif sampler_type == "SequentialSampler":
        sampler = SequentialSampler(wrapper)
    else:
        raise ValueError(f'Unknown sampler "{sampler_type}"; use RandomSampler or SequentialSampler.')
    workers = cfg.DATALOADER.NUM_WORKERS
    loader = DataLoader(
        wrapper, batch_size=batch_size, sampler=sampler, num_workers=workers,
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=torch.cuda.is_available() and cfg.USE_CUDA, persistent_workers=False,
        generator=generator,
    )
    assert len(loader) > 0
    return loader


class DataManager:
    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)
        tfm_train = custom_tfm_train or build_transform(cfg, is_train=True)
        tfm_test = custom_tfm_test or build_transform(cfg, is_train=False)
        self.train_loader_x = None
        if dataset.train_x:
            self.train_loader_x = build_data_loader(
                cfg, cfg.DATALOADER.TRAIN_X.SAMPLER, dataset.train_x, cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
                tfm_train, is_train=True, dataset_wrapper=dataset_wrapper)
        self.train_loader_u = None
        self.val_loader = None
        if dataset.val:
            self.val_loader = build_data_loader(
                cfg, cfg.DATALOADER.TEST.SAMPLER, dataset.val, cfg.DATALOADER.TEST.BATCH_SIZE, tfm_test,
                is_train=False, dataset_wrapper=dataset_wrapper)
        self.test_loader = build_data_loader(
            cfg, cfg.DATALOADER.TEST.SAMPLER, dataset.test, cfg.DATALOADER.TEST.BATCH_SIZE, tfm_test,
            is_train=False, dataset_wrapper=dataset_wrapper)
        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.tfm_train = tfm_train
        self.tfm_test = tfm_test
        self.dataset_wrapper = dataset_wrapper
        self.cfg = cfg
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def num_source_domains(self):
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def train_loader_for_epoch(self, generator: torch.Generator):
        """The training loader with its own seeded generator, so an epoch's order is reproducible on resume."""
        cfg = self.cfg
        return build_data_loader(
            cfg, cfg.DATALOADER.TRAIN_X.SAMPLER, self.dataset.train_x, cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
            self.tfm_train, is_train=True, dataset_wrapper=self.dataset_wrapper, generator=generator)

    def show_dataset_summary(self, cfg):
        rows = [["Dataset", cfg.DATASET.NAME], ["# classes", f"{self.num_classes:,}"]]
        if cfg.DATASET.SUBSAMPLE_CLASSES != "all":
            rows.append(["Classes", cfg.DATASET.SUBSAMPLE_CLASSES])
        rows.append(["# train_x", f"{len(self.dataset.train_x or []):,}"])
        if self.dataset.val:
            rows.append(["# val", f"{len(self.dataset.val):,}"])
        rows.append(["# test", f"{len(self.dataset.test):,}"])
        logger.info(tabulate(rows))
