"""The RRAM crossbar model: configuration, quantizers, the bit-exact OU level, device effects."""

from rramjax.hardware.config import HardwareConfig

__all__ = ["HardwareConfig"]
