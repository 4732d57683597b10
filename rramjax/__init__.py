"""rramjax: design CNNs for RRAM processing-in-memory accelerators, in JAX.

  rramjax.HardwareConfig          every accelerator parameter (paper defaults)
  rramjax.map_layer / map_network the crossbar mapper and cost model (numpy only)
  rramjax.load_config             a validated run configuration from a get_config() file
  rramjax.train_and_evaluate      the pipeline: pretrain -> ADMM -> prune -> fine-tune -> report
  rramjax.patterns, rramjax.hardware, rramjax.mapper, rramjax.train   the subpackages

Names other than the config and the errors load on first use, so the mapper runs without jax.
"""

import importlib

from rramjax.errors import (CheckpointError, ConfigError, DataError, MaskError, RramjaxError,
                            TrainingDivergedError)
from rramjax.hardware.config import HardwareConfig

__version__ = "0.1.0"

_LAZY = {"map_layer": "rramjax.mapper", "map_network": "rramjax.mapper",
         "load_config": "rramjax.config", "train_and_evaluate": "rramjax.train"}
_SUBPACKAGES = ("data", "hardware", "mapper", "models", "patterns", "train")

__all__ = ["HardwareConfig", "ConfigError", "DataError", "CheckpointError", "MaskError",
           "RramjaxError", "TrainingDivergedError", "__version__", *_LAZY, *_SUBPACKAGES]


def __getattr__(name):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
  elif name in _SUBPACKAGES:
    value = importlib.import_module(f"rramjax.{name}")
  else:
    raise AttributeError(f"module 'rramjax' has no attribute {name!r}")
  globals()[name] = value
  return value
