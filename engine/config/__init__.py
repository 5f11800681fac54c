"""Configuration: Dassl's yacs key tree, strict merging, and the merge order of a run.

Merge order (as CoOp's ``setup_cfg``): defaults -> trainer defaults (every registered trainer's ``extend_cfg``)
-> dataset YAML -> method YAML -> command-line flags -> trailing ``KEY VALUE`` opts.
"""
from .defaults import get_cfg_default
from .strict import ConfigError, all_keys, merge_from_file, merge_from_list
from .setup import build_cfg, extend_cfg

__all__ = ["get_cfg_default", "ConfigError", "all_keys", "merge_from_file", "merge_from_list",
           "build_cfg", "extend_cfg"]
