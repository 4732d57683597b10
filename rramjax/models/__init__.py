"""Models by name (flax NNX, no hardware logic inside)."""

from __future__ import annotations

from flax import nnx

from rramjax.errors import ConfigError
from rramjax.models.vgg import SMALL_PLAN, VGG, VGG16_PLAN, conv_output_sizes, ideal_conv

_PLANS = {"vgg16": VGG16_PLAN, "vgg_small": SMALL_PLAN}


def create_model(name: str, *, num_classes: int, in_channels: int, input_size: int,
                 width: float = 1.0, hidden=(), seed: int = 0) -> VGG:
  """Builds a registered model ('vgg16', 'vgg_small')."""
  if name not in _PLANS:
    raise ConfigError(f"Unknown model {name!r}; registered models: {sorted(_PLANS)}.")
  return VGG(_PLANS[name], num_classes, in_channels=in_channels, input_size=input_size,
             width=width, hidden=tuple(hidden), rngs=nnx.Rngs(seed))


def model_names() -> list[str]:
  return sorted(_PLANS)


__all__ = ["VGG", "create_model", "model_names", "conv_output_sizes", "ideal_conv"]
