"""Models by name (flax NNX, no hardware logic inside)."""

from __future__ import annotations

from flax import nnx

from rramjax.errors import ConfigError
from rramjax.models.vgg import VGG, conv_output_sizes, ideal_conv
from rramjax.presets import PLANS


def create_model(name: str, *, num_classes: int, in_channels: int, input_size: int,
                 width: float = 1.0, hidden=(), seed: int = 0) -> VGG:
  """Builds a registered model ('vgg16', 'vgg_small') with seeded weights.

  Args:
    name: the model's name (`model_names()`).
    num_classes: classifier outputs.
    in_channels: image channels.
    input_size: image side.
    width: multiplier on every channel count.
    hidden: widths of hidden fully connected layers.
    seed: seed of the initial weights.

  Returns:
    A `VGG` (flax NNX); calling it takes images NHWC and, optionally, the 3x3 layers' `conv_fn`.

  Example:
    >>> import jax.numpy as jnp
    >>> model = create_model("vgg_small", num_classes=10, in_channels=1, input_size=28, width=0.25)
    >>> model.plan  # channels of the 3x3 layers, 'M' a 2x2 max pool
    (8, 8, 'M', 16, 16, 'M', 32, 32, 'M')
    >>> model(jnp.zeros((2, 28, 28, 1))).shape
    (2, 10)
    >>> conv_output_sizes(model.plan, 28)  # what the mapper counts pixels with
    [(28, 28), (28, 28), (14, 14), (14, 14), (7, 7), (7, 7)]
  """
  if name not in PLANS:
    raise ConfigError(f"Unknown model {name!r}; registered models: {sorted(PLANS)}.")
  return VGG(PLANS[name], num_classes, in_channels=in_channels, input_size=input_size,
             width=width, hidden=tuple(hidden), rngs=nnx.Rngs(seed))


def model_names() -> list[str]:
  return sorted(PLANS)


__all__ = ["VGG", "create_model", "model_names", "conv_output_sizes", "ideal_conv"]
