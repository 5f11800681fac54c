"""Run logging with Python's ``logging``: to the console and to ``OUTPUT_DIR/log.txt`` (appended, never replaced)."""
from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(message)s"
_HANDLER_TAG = "_prompt_learning_handler"


def setup_logger(output: str = "", level: int = logging.INFO) -> logging.Logger:
    """Send every logger's records to stdout and, if ``output`` is given, to ``output/log.txt``.

    ``output`` may be a directory or a file path ending in ``.txt``/``.log``. Calling it again replaces the handlers
    it installed before (a second run in the same process logs to its own directory). Warnings are captured too.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(_FORMAT))
    setattr(console, _HANDLER_TAG, True)
    root.addHandler(console)
    if output:
        path = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fh = logging.FileHandler(path, mode="a", encoding="utf-8")
        fh.setFormatter(logging.Formatter(_FORMAT))
        setattr(fh, _HANDLER_TAG, True)
        root.addHandler(fh)
    logging.captureWarnings(True)
    return root
