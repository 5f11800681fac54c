"""Trainers with Dassl's lifecycle: ``TrainerBase`` -> ``SimpleTrainer`` -> ``TrainerX``.

    train(): before_train -> [before_epoch -> run_epoch -> after_epoch] * E -> after_train
    run_epoch(): for batch: forward_backward(batch) -> dict of floats; the scheduler steps once per epoch

Differences from Dassl, all on the engineering side (``dassl/engine/trainer.py``; docs/OFFICIAL_CODE.md):
- the loop steps each scheduler once at the end of the epoch; a ported trainer that calls ``self.update_lr()``
  itself on its last batch is not stepped twice;
- checkpoints hold the registered modules' state (never the frozen CLIP), the optimiser, the scheduler and every RNG
  state as plain tensors, are written atomically every ``TRAIN.CHECKPOINT_FREQ`` epochs (newest
  ``TRAIN.KEEP_LAST`` kept) and load with ``weights_only=True``; an epoch counts as saved once the manifest
  (``engine.checkpoint_set``) declares it complete for every module, so a killed run restarted with the same
  command continues from one consistent epoch (with the same config, see ``engine.config_fingerprint``) and, on
  CPU with a fixed seed, ends bit-identical to an uninterrupted run;
- every epoch appends a line to ``metrics.jsonl`` before its checkpoint; every test evaluation writes
  ``results.json``;
- TensorBoard events as Dassl's (:mod:`engine.utils.tensorboard`) are also flushed before each checkpoint, and a
  resumed run hides the steps it runs again;
- a NaN/Inf loss stops the run with a message saying where and what to try; saved checkpoints are untouched;
- train/eval switching acts only on registered modules, so frozen CLIP stays in eval mode (BatchNorm in RN50).
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from engine.checkpoint_set import (BEST_FILE, CheckpointMismatchError, CheckpointNotFoundError, check_identity,
                                   complete_epochs, identity, matching_state, module_path, new_manifest, prune,
                                   read_manifest, write_manifest)
from engine.config import ConfigError
from engine.config_fingerprint import (OVERRIDE_FLAG, check_resume_config, config_dict, config_fingerprint,
                                       format_diff)
from engine.data import DataManager
from engine.errors import UserError
from engine.evaluation import build_evaluator
from engine.run_files import append_line, truncate_epoch_lines
from engine.run_results import RESULTS_FILE
from engine.utils import (AverageMeter, CheckpointError, CorruptCheckpointError, MetricMeter, atomic_write_text,
                          get_rng_state, git_commit, load_checkpoint, save_checkpoint, set_rng_state, versions)
from engine.utils.dassl_checkpoint import load_checkpoint_or_dassl
from engine.utils.progress import progress_line, should_print
from engine.utils.tensorboard import TENSORBOARD_DIR, open_writer

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class TrainerBase:
    """Registered models, optimisers and schedulers; saving, loading, mode switching and the epoch loop."""

    def __init__(self):
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims: "OrderedDict[str, Optional[torch.optim.Optimizer]]" = OrderedDict()
        self._scheds: "OrderedDict[str, object]" = OrderedDict()
        self._writer = None
        self._lr_stepped_this_epoch = False

    # ---- registration -------------------------------------------------------------------------------------
    def register_model(self, name: str = "model", model: nn.Module = None, optim=None, sched=None) -> None:
        if self.__dict__.get("_models") is None:
            raise AttributeError("Call super().__init__() before register_model().")
        if name in self._models:
            raise KeyError(f'A model named "{name}" is already registered.')
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None) -> List[str]:
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            if n not in names_real:
                raise KeyError(f'No registered model "{n}"; registered: {names_real}.')
        return names

    # ---- checkpoints --------------------------------------------------------------------------------------
    def _trainer_name(self) -> str:
        cfg = getattr(self, "cfg", None)
        return cfg.TRAINER.NAME if cfg is not None else type(self).__name__

    def _allow_partial_load(self) -> bool:
        cfg = getattr(self, "cfg", None)
        return bool(cfg is not None and cfg.MODEL.get("ALLOW_PARTIAL_LOAD", False))

    def model_state_dict(self, name: str) -> Dict[str, torch.Tensor]:
        """What is saved for a registered module: its state dict (trainable prompts and their buffers)."""
        return self._models[name].state_dict()

    def load_model_state_dict(self, name: str, state_dict: Dict[str, torch.Tensor]) -> None:
        """Load a saved module state (after a trainer's mapping of released checkpoints). Keys and shapes must match
        exactly unless ``MODEL.ALLOW_PARTIAL_LOAD``; class-set-dependent buffers are non-persistent and rebuilt."""
        module = self._models[name]
        what = f'{self._trainer_name()}\'s "{name}" module'
        module.load_state_dict(matching_state(module, state_dict, what, self._allow_partial_load()), strict=False)

    def load_checkpoint_state(self, name: str, ckpt: dict, path: str) -> None:
        """Check a loaded file's identity, then load its module state and extra state into ``name``."""
        check_identity(ckpt, self._trainer_name(), self.get_model_names(), name, path, self._allow_partial_load())
        try:
            self.load_model_state_dict(name, ckpt["state_dict"])
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f"{path}: {e}") from None
        self.load_extra_checkpoint_state(name, ckpt)

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result=None,
                   model_name: str = "") -> None:
        """Save every registered model as ``<directory>/<name>/model.pth.tar-<epoch+1>`` (Dassl's naming); the
        epoch counts as saved only once :meth:`commit_epoch` has written the manifest."""
        rng = get_rng_state()
        names = self.get_model_names()
        for name in names:
            optim, sched = self._optims[name], self._scheds[name]
            state_dict = self.model_state_dict(name)
            state = {
                "state_dict": state_dict,
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
                "best": self.best_record(),
                "rng": rng,
            }
            state.update(identity(self._trainer_name(), names, name, state_dict))
            state.update(self.extra_checkpoint_state(name))
            save_checkpoint(state, os.path.join(directory, name), is_best=is_best, model_name=model_name)

    def best_record(self) -> Optional[dict]:
        """The best validation result so far and its (1-based) epoch, or ``None`` (``TEST.FINAL_MODEL best_val``)."""
        if getattr(self, "best_epoch", None) is None:
            return None
        return {"result": float(self.best_result), "epoch": int(self.best_epoch)}

    def commit_epoch(self, directory: str, epoch: int, keep_last: int = 0, protect: tuple = ()) -> None:
        """Declare ``epoch`` (1-based) complete for every module in the manifest, then prune older epochs."""
        names = self.get_model_names()
        manifest = getattr(self, "_manifest", None) or new_manifest(self._trainer_name(), names)
        manifest["epochs"] = sorted(set(manifest["epochs"]) | {epoch})
        manifest["best"] = self.best_record()
        cfg = getattr(self, "cfg", None)
        manifest["config"] = config_dict(cfg) if cfg is not None else None
        write_manifest(directory, manifest)
        self._manifest = manifest
        prune(directory, manifest, names, keep_last, protect)

    def _start_manifest(self) -> None:
        """A fresh run writes an empty manifest first, so module files without a manifest are never taken for a
        complete epoch of this code (only for an older run's, or released weights)."""
        self._manifest = new_manifest(self._trainer_name(), self.get_model_names())
        self._manifest["config"] = config_dict(self.cfg)
        write_manifest(self.output_dir, self._manifest)

    def extra_checkpoint_state(self, name: str) -> dict:
        """Extra plain values to store with a registered model (tensors, numbers, strings)."""
        return {}

    def load_extra_checkpoint_state(self, name: str, checkpoint: dict) -> None:
        pass

    def resume_model_if_exist(self, directory: str) -> int:
        """Restore the newest epoch complete for every registered model (states, optimisers, schedulers, RNG, best
        validation result); return the start epoch. A corrupt newest file falls back to the previous epoch."""
        names = self.get_model_names()
        manifest = read_manifest(directory)
        epochs = complete_epochs(directory, names, manifest)
        if not epochs:
            return 0
        cfg = getattr(self, "cfg", None)
        changes = []
        if manifest is not None and manifest.get("config") is not None and cfg is not None:
            allow = getattr(self, "allow_config_change", False)
            changes = check_resume_config(manifest["config"], cfg, directory, allow)
        elif cfg is not None:
            logger.warning("%s has no checkpoint manifest (an older run): its config cannot be compared with this one.",
                           directory)
        for epoch in reversed(epochs):
            try:
                ckpts = {n: load_checkpoint(module_path(directory, n, epoch), map_location=self.device) for n in names}
                break
            except CorruptCheckpointError as e:
                logger.warning("%s Falling back to the previous complete epoch.", e)
        else:
            raise CheckpointError(f"Every saved epoch in {directory} ({epochs}) has a corrupt file, so the run cannot "
                                  "resume. Move that folder aside to keep it, and rerun (it restarts from epoch 1).")
        for name, ckpt in ckpts.items():
            path = module_path(directory, name, epoch)
            self.load_checkpoint_state(name, ckpt, path)
            self._restore_optimisation(name, ckpt, epoch, config_changed=bool(changes))
        first = ckpts[names[0]]
        if first.get("rng") is not None:
            set_rng_state(first["rng"])
        best = first.get("best")
        if best is not None:
            self.best_result, self.best_epoch = best["result"], best["epoch"]
        if directory == getattr(self, "output_dir", None):
            self._manifest = manifest or new_manifest(self._trainer_name(), names)
            self._manifest["epochs"] = [e for e in epochs if e <= epoch]
            if changes:
                self._manifest["config_changes"].append({"resumed_after_epoch": epoch, "changes": changes})
                logger.warning("Resuming %s after epoch %d with a changed config (%s):\n%s", directory, epoch,
                               OVERRIDE_FLAG, format_diff([tuple(c) for c in changes]))
        logger.info("Resumed from %s (epoch %d finished)", directory, epoch)
        return epoch

    def _restore_optimisation(self, name: str, ckpt: dict, epoch: int, config_changed: bool) -> None:
        """Restore ``name``'s optimiser and schedule after ``epoch`` finished epochs.

        Normally both come back exactly as saved. After an allowed config change, what runs must be the new config:
        the optimiser keeps its saved state (momentum buffers) but takes the new hyper-parameters (LR, momentum,
        weight decay), and the schedule is the new config's closed-form schedule fast-forwarded to ``epoch``.
        """
        optim, sched = self._optims[name], self._scheds[name]
        if optim is not None and ckpt.get("optimizer") is not None:
            fresh = [{k: v for k, v in g.items() if k != "params"} for g in optim.param_groups]
            optim.load_state_dict(ckpt["optimizer"])
            if config_changed:
                for group, new in zip(optim.param_groups, fresh):
                    group.update(new)
        if sched is None or ckpt.get("scheduler") is None:
            return
        if config_changed and hasattr(sched, "fast_forward"):
            sched.fast_forward(epoch)
        else:
            sched.load_state_dict(ckpt["scheduler"])

    def config_changes(self) -> list:
        """Config changes allowed on resume in this run's history (recorded in results.json)."""
        return list((getattr(self, "_manifest", None) or {}).get("config_changes", []))

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load trained modules for evaluation: ``model.pth.tar-<epoch>``, else the best, else the newest epoch
        complete for every module. All modules must come from one epoch."""
        if not directory:
            raise UserError("--model-dir is required with --eval-only: the run directory of a trained model.")
        names = self.get_model_names()
        best = epoch is None and all(os.path.isfile(os.path.join(directory, n, BEST_FILE)) for n in names)
        if epoch is None and not best:
            complete = complete_epochs(directory, names, read_manifest(directory))
            epoch = complete[-1] if complete else None
        loaded = {}
        for name in names:
            model_dir = os.path.join(directory, name)
            path = os.path.join(model_dir, BEST_FILE) if best else (
                module_path(directory, name, epoch) if epoch is not None else None)
            if path is None or not os.path.isfile(path):
                found = sorted(os.listdir(model_dir)) if os.path.isdir(model_dir) else "nothing (no such folder)"
                raise CheckpointNotFoundError(
                    f'No checkpoint for "{name}" at {path or model_dir}; that folder holds {found}. Check '
                    "--model-dir (the training run's output directory) and --load-epoch.")
            ckpt = load_checkpoint_or_dassl(path, map_location=self.device)  # released Dassl files too
            logger.info('Loading weights to "%s" from %s (epoch %s)', name, path, ckpt.get("epoch"))
            self.load_checkpoint_state(name, ckpt, path)
            loaded[name] = ckpt.get("epoch")
        if len(set(loaded.values())) > 1:
            raise CheckpointError(f"The modules in {directory} were saved at different epochs ({loaded}): the files "
                                  "come from an interrupted save. Rerun the training command to complete it, or "
                                  "pass --load-epoch with an epoch saved for every module.")
        self.loaded_epoch = next(iter(loaded.values()), None)

    # ---- modes, optimisation ------------------------------------------------------------------------------
    def set_model_mode(self, mode: str = "train", names=None) -> None:
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def update_lr(self, names=None) -> None:
        """Step the schedulers (once per epoch: later calls in the same epoch do nothing)."""
        if self._lr_stepped_this_epoch:
            return
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()
        self._lr_stepped_this_epoch = True

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            where = f"epoch {getattr(self, 'epoch', 0) + 1}, batch {getattr(self, 'batch_idx', 0) + 1}"
            raise FloatingPointError(
                f"Loss is {loss.item()} at {where}. Nothing was saved from this epoch; checkpoints of earlier "
                f"epochs in {getattr(self, 'output_dir', '?')} are intact. Try a lower OPTIM.LR, PREC fp32, or check "
                "the data.")

    def model_zero_grad(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad(set_to_none=True)

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss: torch.Tensor, names=None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def train(self, start_epoch: int, max_epoch: int) -> None:
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self._lr_stepped_this_epoch = False
            self.before_epoch()
            self.run_epoch()
            self.update_lr()
            self.after_epoch()
        self.after_train()

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def run_epoch(self):
        raise NotImplementedError

    def test(self):
        raise NotImplementedError

    def parse_batch_train(self, batch):
        raise NotImplementedError

    def parse_batch_test(self, batch):
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    def init_writer(self, log_dir: str, purge_step: Optional[int] = None) -> None:
        """Open the TensorBoard writer (:mod:`engine.utils.tensorboard`; none without the package)."""
        if self._writer is None:
            self._writer = open_writer(log_dir, purge_step)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_scalar(self, tag, scalar_value, global_step=None):
        """One TensorBoard scalar; nothing when no writer is open (evaluation only, no ``tensorboard``)."""
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)


class SimpleTrainer(TrainerBase):
    """Builds data, model and evaluator from a config; checkpoints, metrics and results on disk."""

    def __init__(self, cfg):
        super().__init__()
        try:
            self.check_cfg(cfg)
        except ConfigError:
            raise
        except ValueError as e:  # check_cfg's refusals are about the settings the user gave: one line, exit 2
            raise ConfigError(str(e)) from e
        self.device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -float("inf")
        self.best_epoch: Optional[int] = None
        self.last_results: Optional[dict] = None

    def check_cfg(self, cfg):
        """Check trainer-specific settings before anything is built; a ``ValueError`` here reaches the user as a
        :class:`~engine.config.ConfigError` (one ``error:`` line, exit 2)."""

    def build_data_loader(self):
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_model(self):
        raise NotImplementedError("A trainer builds its model in build_model() and registers it.")

    # ---- train ----------------------------------------------------------------------------------------------
    def train(self):
        try:
            super().train(self.start_epoch, self.max_epoch)
        finally:
            self.close_writer()

    def before_train(self):
        directory = self.cfg.RESUME or self.output_dir
        self.start_epoch = self.resume_model_if_exist(directory)
        if self.start_epoch == 0 and self.get_model_names():
            self._start_manifest()
        self._truncate_metrics(self.start_epoch)
        purge_step = self.start_epoch * len(self.train_loader_x) if self.start_epoch else None
        self.init_writer(os.path.join(self.output_dir, TENSORBOARD_DIR), purge_step)
        self.time_start = time.time()

    def after_epoch(self):
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        periodic = freq > 0 and (self.epoch + 1) % freq == 0
        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            result = self.test(split="val", record=False)
            if result > self.best_result:
                self.best_result, self.best_epoch = result, self.epoch + 1
                self.save_model(self.epoch, self.output_dir, val_result=result, model_name=BEST_FILE)
        if self._writer is not None:
            self._writer.flush()  # before the checkpoint too: a resume hides re-run steps (purge), never loses
        self._append_metrics()  # before the manifest that declares the epoch done: a resume truncates, never loses
        if periodic or last_epoch:
            self.save_model(self.epoch, self.output_dir)
            self.commit_epoch(self.output_dir, self.epoch + 1, self.cfg.TRAIN.KEEP_LAST, protect=(self.max_epoch,))

    def after_train(self):
        logger.info("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                logger.info("Deploying the model with the best validation performance (epoch %s)", self.best_epoch)
                self.load_model(self.output_dir)
                if self.best_epoch is not None and self.loaded_epoch != self.best_epoch:
                    raise CheckpointError(
                        f"The best-validation files in {self.output_dir} are from epoch {self.loaded_epoch}, but "
                        f"the run's best epoch is {self.best_epoch}; rerun with --force in a new --output-dir.")
            self.test()
        elapsed = str(datetime.timedelta(seconds=round(time.time() - self.time_start)))
        logger.info("Elapsed: %s", elapsed)

    # ---- evaluation -----------------------------------------------------------------------------------------
    def before_test(self):
        """Hook called in evaluation mode before the first test batch (e.g. to cache class text features)."""

    def after_test(self):
        """Hook called after the last test batch (e.g. to drop cached features)."""

    @torch.no_grad()
    def test(self, split: Optional[str] = None, record: bool = True) -> float:
        """Evaluate on ``split`` (``TEST.SPLIT`` by default); log Dassl's lines, write ``results.json`` (unless
        ``record`` is False, as for the per-epoch validation of ``best_val``)."""
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            loader = self.val_loader
        else:
            split, loader = "test", self.test_loader
        logger.info("Evaluate on the *%s* set", split)
        self.before_test()
        for output, label in self.evaluation_outputs(loader):
            self.evaluator.process(output, label)
        self.after_test()
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        if record and (split == self.cfg.TEST.SPLIT or split == "test"):
            self.last_results = dict(results)
            self.write_results(results, split)
        return list(results.values())[0]

    def evaluation_outputs(self, loader):
        """``(logits, labels)`` per batch of ``loader`` (a trainer may override it, e.g. to reuse stored features)."""
        for batch in loader:
            inputs, label = self.parse_batch_test(batch)
            yield self.model_inference(inputs), label

    def model_inference(self, input):
        return self.model(input)

    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names=None) -> float:
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]

    # ---- files ----------------------------------------------------------------------------------------------
    def write_results(self, metrics: dict, split: str) -> str:
        cfg = self.cfg
        eval_only = getattr(self, "eval_only", False)
        record = {
            "schema_version": 1,
            "trainer": cfg.TRAINER.NAME,
            "dataset": cfg.DATASET.NAME,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "seed": cfg.SEED,
            "num_shots": cfg.DATASET.NUM_SHOTS,
            "shots_per_class": self.dm.dataset.shots_per_class,
            "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
            "split": split,
            "eval_only": eval_only,
            "model_dir": getattr(self, "model_dir", None),
            "load_epoch": getattr(self, "load_epoch", None),
            "epoch": getattr(self, "loaded_epoch", None) if eval_only else self.max_epoch,
            "metrics": {k: float(v) if isinstance(v, float) else v for k, v in metrics.items()},
            "num_classes": self.num_classes,
            "output_dir": os.path.abspath(self.output_dir),
            "config": json.loads(json.dumps(cfg, default=list)),
            "config_fingerprint": config_fingerprint(config_dict(cfg)),
            "git_commit": git_commit(),
            "versions": versions(),
            "device": str(self.device),
            "config_changes": self.config_changes(),
            "wall_time_s": round(time.time() - getattr(self, "time_start", time.time()), 3),
        }
        path = os.path.join(self.output_dir, RESULTS_FILE)
        atomic_write_text(json.dumps(record, indent=2) + "\n", path)
        return path

    def _metrics_path(self) -> str:
        return os.path.join(self.output_dir, METRICS_FILE)

    def _truncate_metrics(self, start_epoch: int) -> None:
        """On resume, drop lines of epochs after the restored checkpoint (they will be re-run)."""
        truncate_epoch_lines(self._metrics_path(), start_epoch)

    def epoch_metrics(self) -> dict:
        """Extra values logged in this epoch's ``metrics.jsonl`` line (override to add, e.g., prompt norms)."""
        return {}

    def _append_metrics(self) -> None:
        record = {"epoch": self.epoch + 1, "lr": self._epoch_lr}
        record.update(getattr(self, "_epoch_losses", {}))
        record["time_s"] = round(getattr(self, "_epoch_time", 0.0), 3)
        record.update(self.epoch_metrics())
        append_line(self._metrics_path(), record)


class TrainerX(SimpleTrainer):
    """Trainer on labelled data only (the base class of the CoOp family)."""

    def run_epoch(self):
        """Dassl's loop and log lines (:mod:`engine.utils.progress`). The schedulers step after the last batch's
        ``forward_backward`` and before its line, as in Dassl's trainers, so that line shows the next epoch's LR;
        ``metrics.jsonl`` records the LR the epoch ran at."""
        self.set_model_mode("train")
        losses, batch_time, data_time = MetricMeter(), AverageMeter(), AverageMeter()
        self._epoch_lr = self.get_current_lr()
        loader = self.train_loader_x
        self.num_batches = len(loader)
        t0 = end = time.time()
        for self.batch_idx, batch in enumerate(loader):
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            if self.batch_idx + 1 == self.num_batches:
                self.update_lr()
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            if should_print(self.batch_idx, self.num_batches, self.cfg.TRAIN.PRINT_FREQ):
                logger.info(progress_line(self.epoch, self.max_epoch, self.batch_idx, self.num_batches, batch_time,
                                          data_time, losses, self.get_current_lr()))
            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.meters.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)
            end = time.time()
        self._epoch_time = time.time() - t0
        self._epoch_losses = losses.averages()

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)
