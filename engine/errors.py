"""Mistakes a user can fix, as opposed to bugs.

``train.py`` prints one ``error: <message>`` line for these and exits with status 2 (``--debug`` shows the
traceback); any other exception is an internal error and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the command, the files or the output directory; the message says what to do."""


class ResumeRefusedError(UserError):
    """The output directory holds a run that this command must not continue (e.g. another config)."""


class RunLockedError(UserError):
    """Another live process is running in the same output directory."""


def user_error_types() -> tuple:
    """Exception types that report a user mistake (unknown key, missing data or weights, unusable checkpoint)."""
    from clip.backbone import BackboneError
    from clip.loading import WeightsNotFoundError
    from datasets.layout import UnknownDatasetError
    from engine.config import ConfigError
    from engine.data.data_manager import ImageReadError
    from engine.data.datasets.base_dataset import DatasetError
    from engine.utils.checkpoint import CheckpointError

    return (UserError, ConfigError, DatasetError, ImageReadError, WeightsNotFoundError, BackboneError,
            UnknownDatasetError, CheckpointError)
