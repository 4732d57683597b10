"""The run's pruning targets: library sizes, library extraction, kernel keep ratios, their checks.

Every function takes the config and plain arrays (the conv kernels in network order, HWIO), so the
targets of a run can be computed and checked without a Trainer (docs/MODEL.md section 2).

In the training state a layer's library is a `(K, 9)` float 0/1 matrix of fixed size K (the
checkpoint's structure is fixed by the config); a library with fewer than K distinct patterns
repeats its first pattern in the spare rows, which changes no projection.
"""

from __future__ import annotations

import numpy as np

from rramjax import patterns
from rramjax.config import Config
from rramjax.errors import ConfigError
from rramjax.hardware.config import KERNEL_POSITIONS
from rramjax.plan import column_group_size


def library_sizes(config: Config, num_layers: int) -> list[int]:
  """Library size K per 3x3 layer (8 for PatDNN's shared default library)."""
  p = config.prune
  if p.library == "patdnn_default":
    return [len(patterns.default_patdnn_library())] * num_layers
  counts = p.patterns_per_layer
  counts = list(counts) if isinstance(counts, (list, tuple)) else [counts] * num_layers
  patterns.validate_targets(num_layers, counts, [1.0] * num_layers)
  return counts


def library_codes(matrix) -> tuple[int, ...]:
  """Distinct pattern codes of a `(K, 9)` library matrix of the state, in row order."""
  codes = np.asarray(patterns.mask_to_code(np.asarray(matrix) > 0.5))
  return tuple(dict.fromkeys(int(c) for c in codes if c))


def library_rows(codes, size: int) -> np.ndarray:
  """Codes as the state's `(size, 9)` float32 matrix; spare rows repeat the first pattern."""
  matrix = np.asarray(patterns.library_matrix(codes), np.float32)
  return np.concatenate([matrix, np.repeat(matrix[:1], size - len(matrix), axis=0)])


def granularity(config: Config, kernels) -> tuple[str, tuple[int, ...]]:
  """`(prune.granularity, filters per column group of each layer)`: the unit the projections work on.

  With 'ou_group' the filters of one column group of the packed mapping (`rramjax.plan`) share
  each input channel's pattern, so the group's needed rows are exactly its kept taps. With
  `prune.ou_group_layers='multi_ou'`, a layer whose whole kernel column fits one OU
  (`9 * Cin <= hardware.ou_rows`, e.g. a first layer on one-channel images) keeps kernel
  granularity (groups of 1 filter): its group's needed rows fit one OU whatever the patterns,
  so sharing them would cost accuracy and save no OU activation or ADC conversion.
  Only the kernels' shapes are read.
  """
  group = column_group_size(config.hardware)
  multi = config.prune.ou_group_layers == "multi_ou"
  return config.prune.granularity, tuple(
      1 if multi and KERNEL_POSITIONS * w.shape[2] <= config.hardware.ou_rows else group
      for w in kernels)


def extract_libraries(config: Config, kernels) -> list[tuple[int, ...]]:
  """Each layer's pattern library from (pretrained) weights, by `prune.library`.

  The library is drawn from the kernels that survive a provisional connectivity pruning at the
  keep ratio the target implies for `prune.pattern_size`-entry patterns (PatDNN counts patterns
  over surviving kernels only).
  """
  p = config.prune
  sizes = library_sizes(config, len(kernels))
  if p.library == "patdnn_default":
    return [patterns.default_patdnn_library()] * len(kernels)
  provisional = keep_ratios(config, kernels, [p.pattern_size] * len(kernels))
  unit, groups = granularity(config, kernels)
  libraries = []
  for w, k, r, group in zip(kernels, sizes, provisional, groups):
    alive = np.asarray(patterns.connectivity_mask(w, r, unit, group))
    if p.library == "patdnn":
      lib = patterns.extract_library_patdnn(w, k, p.pattern_size, kernel_mask=alive,
                                            granularity=unit, group_size=group)
    else:
      lib = patterns.extract_library_greedy(w, k, kernel_mask=alive, granularity=unit,
                                            group_size=group)
    libraries.append(tuple(lib))
  return libraries


def keep_ratios(config: Config, kernels, pattern_sizes) -> list[float]:
  """Kernel keep ratio per layer: `prune.keep_ratios`, or the allocation rule for `prune.sparsity`.

  Only the kernels' shapes are read, so shape structs (`jax.ShapeDtypeStruct`) do as well.
  """
  p = config.prune
  n = len(kernels)
  if p.keep_ratios is not None:
    ratios = list(p.keep_ratios) if isinstance(p.keep_ratios, (list, tuple)) else [p.keep_ratios] * n
    patterns.validate_targets(n, [1] * n, ratios)
    return [float(r) for r in ratios]
  return patterns.keep_ratios_for_sparsity([w.shape for w in kernels], pattern_sizes, p.sparsity,
                                           rule=p.allocation)


def expected_pattern_sizes(config: Config, kernels, libraries) -> list[float]:
  """Mean size of the pattern each layer's kernels project onto (usage-weighted)."""
  sizes = []
  unit, groups = granularity(config, kernels)
  for w, lib, group in zip(kernels, libraries, groups):
    _, mask = patterns.project_to_library(w, lib, unit, group)
    sizes.append(float(np.count_nonzero(np.asarray(mask))) / (w.shape[2] * w.shape[3]))
  return sizes


def check_targets(config: Config, phases, kernels) -> None:
  """Rejects pruning targets the network cannot take, before any training.

  Args:
    config: the run's config.
    phases: the phase name of every epoch of the run, in order.
    kernels: the conv kernels (or their shape structs), network order.

  Raises:
    ConfigError: a per-layer target of the wrong length or out of range, or pruning without a
      fine-tuning epoch.
  """
  if not config.prune.enabled:
    return
  n = len(kernels)
  library_sizes(config, n)
  if config.prune.keep_ratios is not None:
    keep_ratios(config, kernels, [config.prune.pattern_size] * n)
  if "finetune" not in phases:
    raise ConfigError("Config key train.finetune_epochs: pruning needs at least one fine-tuning "
                      "epoch (the hard projection to masks happens when fine-tuning begins).")
