"""VGG networks as flax NNX modules (no hardware logic inside).

Every 3x3 convolution goes through a `conv_fn(x, kernel, layer) -> y` that the caller passes in:
the training step builds it from the hardware model (ideal, quantized or OU-exact crossbar), so
the model only describes the architecture.

References:
  Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
  arXiv:1409.1556 (configuration D = VGG16).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
from flax import nnx

from rramjax.ops import conv3x3, max_pool2x2
from rramjax.presets import SMALL_PLAN, VGG16_PLAN, conv_output_sizes  # noqa: F401 (re-exported)

ConvFn = Callable[[jax.Array, jax.Array, int], jax.Array]


def ideal_conv(x: jax.Array, kernel: jax.Array, layer: int) -> jax.Array:
  """The digital reference `conv_fn`: `rramjax.ops.conv3x3` (every layer alike)."""
  del layer
  return conv3x3(x, kernel)


class Conv3x3(nnx.Module):
  """A bias-free 3x3 convolution (batch norm follows it); the computation is `conv_fn`'s."""

  def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
    self.kernel = nnx.Param(init(rngs.params(), (3, 3, cin, cout)))

  def __call__(self, x, conv_fn: ConvFn, layer: int):
    return conv_fn(x, self.kernel[...], layer)


class VGG(nnx.Module):
  """VGG: 3x3 conv + batch norm + ReLU stages with 2x2 max pools, then a classifier.

  No dropout: batch norm regularises, and a stateless model keeps the step a pure function of
  (params, batch statistics, batch).

  Args:
    plan: channel counts of the 3x3 conv layers with 'M' for a max pool.
    num_classes: classifier outputs.
    in_channels: image channels.
    input_size: image side (the classifier's input size follows from it).
    width: multiplier on every channel count.
    hidden: widths of hidden fully connected layers (() for CIFAR VGG16, (4096, 4096) ImageNet).
  """

  def __init__(self, plan: Sequence[int | str], num_classes: int, *, in_channels: int,
               input_size: int, width: float = 1.0, hidden: Sequence[int] = (),
               rngs: nnx.Rngs):
    self.plan = tuple(c if c == "M" else max(1, int(round(c * width))) for c in plan)
    convs, norms, cin, side = [], [], in_channels, input_size
    for c in self.plan:
      if c == "M":
        side //= 2
        continue
      convs.append(Conv3x3(cin, c, rngs=rngs))
      norms.append(nnx.BatchNorm(c, momentum=0.9, rngs=rngs))
      cin = c
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    dims = [cin * side * side, *hidden]
    self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
    self.head = nnx.Linear(dims[-1], num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, conv_fn: ConvFn = ideal_conv) -> jax.Array:
    layer = 0
    for c in self.plan:
      if c == "M":
        x = max_pool2x2(x)
        continue
      x = nnx.relu(self.norms[layer](self.convs[layer](x, conv_fn, layer)))
      layer += 1
    x = x.reshape(x.shape[0], -1)
    for dense in self.hidden:
      x = nnx.relu(dense(x))
    return self.head(x)

