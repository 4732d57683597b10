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
import numpy as np
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


def permute_filters(params: dict, batch_stats: dict, layer: int, order) -> tuple[dict, dict]:
  """The same network with the filters of 3x3 layer `layer` reordered: new filter `i` is old filter
  `order[i]`.

  Works on a `VGG`'s pure parameter and batch-statistic dicts (`nnx.to_pure_dict`): the layer's
  kernel (output axis), its batch norm (scale, bias, mean, var), and what reads its output: the
  next 3x3 layer's input axis, or, after the last one, the rows of the first dense layer (the
  flattened NHWC features, channel fastest; max pools keep channels apart). The network computes
  the same function (up to the order of floating-point sums over channels).

  Example:
    >>> import numpy as np
    >>> from flax import nnx
    >>> model = VGG((4, "M", 4), 3, in_channels=1, input_size=4, rngs=nnx.Rngs(0))
    >>> _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    >>> params, stats = nnx.to_pure_dict(params), nnx.to_pure_dict(stats)
    >>> new, _ = permute_filters(params, stats, 0, [3, 2, 1, 0])
    >>> bool(np.all(new["convs"][0]["kernel"][..., 0] == params["convs"][0]["kernel"][..., 3]))
    True
  """
  convs = params["convs"]
  keys = sorted(convs)
  key = keys[layer]
  cout = convs[key]["kernel"].shape[3]
  order = np.asarray(order)
  if sorted(order.tolist()) != list(range(cout)):
    raise ValueError(f"order must be a permutation of the layer's {cout} filters, got {order.tolist()}.")
  new_convs = dict(convs)
  new_convs[key] = {**convs[key], "kernel": convs[key]["kernel"][..., order]}
  norms = params["norms"]
  new_params = {**params, "convs": new_convs,
                "norms": {**norms, key: {n: v[order] for n, v in norms[key].items()}}}
  stat_norms = batch_stats["norms"]
  new_stats = {**batch_stats,
               "norms": {**stat_norms, key: {n: v[order] for n, v in stat_norms[key].items()}}}
  if layer + 1 < len(keys):
    nxt = keys[layer + 1]
    new_convs[nxt] = {**convs[nxt], "kernel": convs[nxt]["kernel"][:, :, order, :]}
  else:  # the first dense layer's rows: flattened (position, channel), channel fastest
    def permute_rows(dense):
      kernel = dense["kernel"]
      rows = kernel.reshape(-1, cout, kernel.shape[1])[:, order, :].reshape(kernel.shape)
      return {**dense, "kernel": rows}
    if params.get("hidden"):
      first = sorted(params["hidden"])[0]
      new_params["hidden"] = {**params["hidden"], first: permute_rows(params["hidden"][first])}
    else:
      new_params["head"] = permute_rows(params["head"])
  return new_params, new_stats
