"""Connectivity pruning (whole kernels by L2 norm), sparsity allocation and pruning targets.

A layer keeps `num_kept_kernels(Cin*Cout, keep_ratio) = max(1, floor(keep_ratio*Cin*Cout + 1/2))`
kernels [choice: round half up, at least one], those with the largest L2 norm (first index on ties).
At OU-group granularity (`granularity="ou_group"`, docs/MODEL.md section 8) the unit is
a group of `group_size` consecutive filters at one input channel: a group drops an input channel
together, and the layer keeps `num_kept_kernels(Cin * G, keep_ratio)` of its `Cin * G` units
(`G = ceil(Cout / group_size)`), those with the largest L2 norm.

References:
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (connectivity pruning).
  Zhang et al., "A Systematic DNN Weight Pruning Framework using ADMM", ECCV 2018.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.patterns.codes import (KERNEL_POSITIONS, MAX_CODE, check_conv_kernel,
                                    expand_filter_groups, sum_filter_groups)
from rramjax.patterns.projection import check_granularity, project_to_library
from rramjax.plan import DEFAULT_GROUP_SIZE

ALLOCATION_RULES = ("uniform", "first_dense", "erk")


def check_keep_ratio(keep_ratio, name: str = "keep_ratio") -> float:
  """Returns `keep_ratio` as a float, or raises ConfigError unless it lies in (0, 1].

  Example:
    >>> check_keep_ratio(1)
    1.0
    >>> check_keep_ratio(0.0)
    Traceback (most recent call last):
    rramjax.errors.ConfigError: keep_ratio (fraction of kernels kept) must lie in (0, 1], got 0.0.
  """
  if isinstance(keep_ratio, bool) or not isinstance(keep_ratio, (int, float, np.number)) \
      or not 0.0 < float(keep_ratio) <= 1.0:
    raise ConfigError(f"{name} (fraction of kernels kept) must lie in (0, 1], got {keep_ratio!r}.")
  return float(keep_ratio)


def num_kept_kernels(num_kernels: int, keep_ratio: float) -> int:
  """Kernels a layer keeps: round half up of keep_ratio * num_kernels, at least one.

  Example:
    >>> num_kept_kernels(10, 0.25), num_kept_kernels(10, 0.35), num_kept_kernels(10, 0.01)
    (3, 4, 1)
  """
  keep_ratio = check_keep_ratio(keep_ratio)
  return max(1, min(num_kernels, math.floor(keep_ratio * num_kernels + 0.5)))


@functools.partial(jax.jit, static_argnums=1)
def top_kernels(w, num_kept: int):
  """`(Cin, Cout)` bool: the `num_kept` kernels of largest L2 norm (lower flat index on ties).

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 2, 2), np.float32)
    >>> w[1, 1] = [[3.0, 1.0], [0.5, 2.0]]  # only centres: kernel (c, f) has norm w[1, 1, c, f]
    >>> np.asarray(top_kernels(w, 3))
    array([[ True,  True],
           [False,  True]])
  """
  norms = jnp.sum(jnp.square(w), axis=(0, 1)).reshape(-1)
  _, kept = jax.lax.top_k(norms, num_kept)
  return jnp.zeros(norms.shape, bool).at[kept].set(True).reshape(w.shape[2:])


@functools.partial(jax.jit, static_argnums=(1, 2))
def top_groups(w, num_kept: int, group_size: int):
  """`(Cin, Cout)` bool: the kernels of the `num_kept` (channel, filter group) units of largest L2
  norm (lower flat index on ties); `group_size` 1 is `top_kernels`."""
  if group_size == 1:
    return top_kernels(w, num_kept)
  norms = sum_filter_groups(jnp.sum(jnp.square(w), axis=(0, 1)), group_size)   # (Cin, G)
  _, kept = jax.lax.top_k(norms.reshape(-1), num_kept)
  units = jnp.zeros(norms.size, bool).at[kept].set(True).reshape(norms.shape)
  return expand_filter_groups(units, group_size, w.shape[3])


def num_units(shape, granularity: str = "kernel", group_size: int = DEFAULT_GROUP_SIZE) -> int:
  """Connectivity units of an HWIO layer: its kernels, or its (channel, filter group) pairs."""
  groups = shape[3] if granularity == "kernel" else -(-shape[3] // group_size)
  return shape[2] * groups


def connectivity_mask(w, keep_ratio: float, granularity: str = "kernel",
                      group_size: int = DEFAULT_GROUP_SIZE):
  """Kernels kept by connectivity pruning.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    keep_ratio: fraction of the units kept, in (0, 1].
    granularity: 'kernel' (the Cin*Cout kernels are the units) or 'ou_group' (the (channel,
      group of `group_size` consecutive filters) pairs are; see the module doc).
    group_size: filters per group for 'ou_group'.

  Returns:
    bool `(Cin, Cout)` with exactly `num_kept_kernels(units, keep_ratio)` units kept (all their
    kernels True), those of largest L2 norm.

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 2, 2), np.float32)
    >>> w[1, 1] = [[3.0, 1.0], [0.5, 2.0]]
    >>> np.asarray(connectivity_mask(w, 0.5))  # 2 of the 4 kernels: norms 3 and 2
    array([[ True, False],
           [False,  True]])
  """
  check_conv_kernel(w)
  check_granularity(granularity, group_size)
  kept = num_kept_kernels(num_units(w.shape, granularity, group_size), keep_ratio)
  return top_groups(jnp.asarray(w), kept, 1 if granularity == "kernel" else int(group_size))


def project_connectivity(w, num_kept: int, group_size: int = 1):
  """Euclidean projection onto "at most `num_kept` nonzero units" (kernels, or (channel, filter
  group) pairs of `group_size` filters): zero all but the largest.

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 2, 2), np.float32)
    >>> w[1, 1] = [[3.0, 1.0], [0.5, 2.0]]
    >>> np.asarray(project_connectivity(w, 1))[1, 1]
    array([[3., 0.],
           [0., 0.]], dtype=float32)
  """
  return w * top_groups(w, num_kept, group_size)[None, None].astype(w.dtype)


def prune_layer(w, library, keep_ratio: float, granularity: str = "kernel",
                group_size: int = DEFAULT_GROUP_SIZE):
  """Pattern and connectivity pruning of one layer: the final 0/1 mask.

  Every kernel is projected onto its best library pattern first; then the kernels whose *projected*
  weights have the largest L2 norm are kept [choice: ranking after projection keeps the most squared
  weight the layer can keep with these patterns and this kernel count].

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    library: pattern codes or `(K, 9)` matrix.
    keep_ratio: fraction of kernels (or OU-group units) kept, in (0, 1].
    granularity, group_size: 'kernel', or 'ou_group' with its filters per group (the projection
      and the connectivity pruning both work on (channel, group) units then).

  Returns:
    HWIO 0/1 mask (dtype of `w`): every kernel is all zero or exactly one library pattern; with
    'ou_group' the kernels of a group at a channel share it or are all removed.

  Example:
    >>> import numpy as np
    >>> from rramjax.patterns import pattern_codes
    >>> w = np.arange(1, 19, dtype=np.float32).reshape(3, 3, 1, 2)  # filter 1 a bit larger
    >>> mask = prune_layer(w, [16, 27], keep_ratio=0.5)  # the centre; the top-left 2x2 square
    >>> np.asarray(pattern_codes(mask))  # the square for both; only the larger kernel is kept
    array([[ 0, 27]])
  """
  check_conv_kernel(w)
  w_projected, mask = project_to_library(w, library, granularity, group_size)
  kept = connectivity_mask(w_projected, keep_ratio, granularity, group_size)
  return mask * kept[None, None].astype(mask.dtype)


def _layer_kernels(layer_shapes) -> np.ndarray:
  counts = []
  for shape in layer_shapes:
    shape = tuple(int(d) for d in shape)
    if len(shape) not in (2, 4) or min(shape) < 1 or (len(shape) == 4 and shape[:2] != (3, 3)):
      raise ConfigError(f"A layer shape must be (Cin, Cout) or HWIO (3, 3, Cin, Cout), got {shape}.")
    counts.append(shape[-2] * shape[-1])
  return np.asarray(counts, np.float64)


def keep_ratios_for_sparsity(layer_shapes: Sequence[Sequence[int]], pattern_sizes: Sequence[float],
                             overall_sparsity: float, rule: str = "uniform") -> list[float]:
  """Per-layer kernel keep ratios that give one overall 3x3-conv weight sparsity.

  With n_l = Cin_l*Cout_l kernels and k_l kept positions per kept kernel (the average pattern size),
  the ratios solve exactly

      overall_sparsity = 1 - sum_l keep_l n_l k_l / sum_l 9 n_l.

  Rules [choice]: 'uniform' gives every layer the same keep ratio; 'first_dense' keeps every kernel
  of the first layer (few weights, most sensitive: it sees the raw image) and a uniform ratio on the
  rest; 'erk' (Erdos-Renyi kernel, Evci et al., "Rigging the Lottery", ICML 2020) makes the keep
  ratio proportional to (Cin + Cout) / (Cin * Cout), capped at 1 with the excess spread over the
  other layers, so narrow layers stay denser than wide ones. Rounding to whole kernels (`num_kept_kernels`) moves the realised sparsity by at most half a
  kernel per layer.

  Args:
    layer_shapes: per conv layer, `(Cin, Cout)` or HWIO `(3, 3, Cin, Cout)`.
    pattern_sizes: per layer, kept positions per kept kernel (0 < k <= 9).
    overall_sparsity: target fraction of 3x3-conv weights that are zero, in [0, 1).
    rule: 'uniform', 'first_dense' or 'erk'.

  Returns:
    keep ratios, one per layer, each in (0, 1].

  Raises:
    ConfigError: mismatched lengths, bad sizes, an unknown rule, or a target the patterns cannot
      reach with keep ratios in (0, 1].

  Example:
    >>> shapes, sizes = [(16, 32), (32, 32)], [4, 4]  # 4-entry patterns: 5/9 zero already
    >>> [round(r, 4) for r in keep_ratios_for_sparsity(shapes, sizes, 0.8)]
    [0.45, 0.45]
    >>> [round(r, 4) for r in keep_ratios_for_sparsity(shapes, sizes, 0.8, rule="first_dense")]
    [1.0, 0.175]
  """
  kernels = _layer_kernels(layer_shapes)
  sizes = np.asarray(pattern_sizes, np.float64).reshape(-1)
  if len(sizes) != len(kernels) or not len(kernels):
    raise ConfigError(f"Need one pattern size per layer: {len(kernels)} layer shapes, "
                      f"{len(sizes)} pattern sizes.")
  if not np.all((sizes > 0) & (sizes <= KERNEL_POSITIONS)):
    raise ConfigError(f"Pattern sizes must lie in (0, 9], got {sizes.tolist()}.")
  if not isinstance(overall_sparsity, (int, float)) or not 0.0 <= overall_sparsity < 1.0:
    raise ConfigError(f"overall_sparsity must lie in [0, 1), got {overall_sparsity!r}.")
  if rule not in ALLOCATION_RULES:
    raise ConfigError(f"Unknown allocation rule {rule!r}; known rules: {ALLOCATION_RULES}.")
  dense_weights = kernels * sizes  # weights each layer keeps at keep ratio 1
  if rule == "erk":
    return _erk_ratios(layer_shapes, dense_weights, overall_sparsity, kernels.sum())
  fixed = np.zeros(len(kernels), bool)
  fixed[0] = rule == "first_dense"
  budget = (1.0 - overall_sparsity) * KERNEL_POSITIONS * kernels.sum() - dense_weights[fixed].sum()
  if (~fixed).any():
    ratio = budget / dense_weights[~fixed].sum()
  else:  # a single layer kept dense: the target is reachable only if it is exactly that sparsity
    ratio = 1.0 if math.isclose(budget, 0.0, abs_tol=1e-9 * kernels.sum()) else -1.0
  least = 1.0 - dense_weights.sum() / (KERNEL_POSITIONS * kernels.sum())
  most = 1.0 - dense_weights[fixed].sum() / (KERNEL_POSITIONS * kernels.sum())
  if ratio > 1.0 + 1e-12:
    raise ConfigError(
        f"Overall sparsity {overall_sparsity:.4f} is below what the patterns alone give "
        f"({least:.4f}, every kernel kept): use larger patterns or a higher target.")
  if ratio <= 0.0:
    raise ConfigError(
        f"Overall sparsity {overall_sparsity:.4f} cannot be reached with rule {rule!r}: it allows at "
        f"most {most:.4f} with keep ratios in (0, 1]. Lower the target or use rule 'uniform'.")
  return [1.0 if f else float(min(ratio, 1.0)) for f in fixed]


def _erk_ratios(layer_shapes, dense_weights, overall_sparsity, total_kernels) -> list[float]:
  dims = np.asarray([tuple(int(d) for d in shape)[-2:] for shape in layer_shapes], np.float64)
  score = dims.sum(1) / dims.prod(1)
  budget = (1.0 - overall_sparsity) * KERNEL_POSITIONS * total_kernels
  if budget > dense_weights.sum() * (1 + 1e-12):
    least = 1.0 - dense_weights.sum() / (KERNEL_POSITIONS * total_kernels)
    raise ConfigError(f"Overall sparsity {overall_sparsity:.4f} is below what the patterns alone give "
                      f"({least:.4f}, every kernel kept): use larger patterns or a higher target.")
  full = np.zeros(len(score), bool)
  while True:  # water-filling: layers whose ratio would exceed 1 are kept whole
    if full.all():  # the budget is the dense total: every layer is kept whole
      return [1.0] * len(score)
    scale = (budget - dense_weights[full].sum()) / max((dense_weights * score)[~full].sum(), 1e-300)
    over = ~full & (scale * score >= 1.0)
    if not over.any():
      break
    full |= over
  if scale <= 0:
    raise ConfigError(f"Overall sparsity {overall_sparsity:.4f} cannot be reached with rule 'erk'.")
  return [1.0 if f else float(scale * s) for f, s in zip(full, score)]


def validate_targets(num_conv_layers: int, patterns_per_layer: Sequence[int],
                     keep_ratios: Sequence[float]) -> None:
  """Checks per-layer pruning targets before any training starts.

  Args:
    num_conv_layers: 3x3 conv layers in the network.
    patterns_per_layer: library size per layer, each 1..511.
    keep_ratios: kernel keep ratio per layer, each in (0, 1].

  Raises:
    ConfigError: a length that is not `num_conv_layers`, a pattern count out of 1..511, or a keep
      ratio out of (0, 1]; the message names the layer.

  Example:
    >>> validate_targets(2, [8, 4], [0.5, 0.25])
    >>> validate_targets(2, [8, 600], [0.5, 0.25])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    rramjax.errors.ConfigError: patterns_per_layer[1] must be an integer in 1..511 ... got 600.
  """
  for name, values in (("patterns_per_layer", patterns_per_layer), ("keep_ratios", keep_ratios)):
    if len(values) != num_conv_layers:
      raise ConfigError(f"{name} has {len(values)} entries but the network has {num_conv_layers} "
                        f"3x3 conv layers; give one per layer.")
  for layer, count in enumerate(patterns_per_layer):
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) \
        or not 1 <= count <= MAX_CODE:
      raise ConfigError(f"patterns_per_layer[{layer}] must be an integer in 1..{MAX_CODE} (there are "
                        f"only {MAX_CODE} nonempty 3x3 patterns), got {count!r}.")
  for layer, ratio in enumerate(keep_ratios):
    check_keep_ratio(ratio, f"keep_ratios[{layer}]")
