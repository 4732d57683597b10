"""rramjax: design CNNs for RRAM processing-in-memory accelerators, in JAX."""

from rramjax.errors import CheckpointError, ConfigError, DataError, MaskError, RramjaxError
from rramjax.hardware.config import HardwareConfig

__version__ = "0.1.0"

__all__ = ["HardwareConfig", "ConfigError", "DataError", "CheckpointError", "MaskError",
           "RramjaxError", "__version__"]
