"""Pattern projection: each kernel takes the library pattern that keeps the most squared weight.

For kernel rows `w_n` (9 positions) and a library matrix `P` (K, 9) of 0/1 rows, the Euclidean
projection onto "w_n is zero outside one library pattern" is `w_n * P[k*]` with

    k* = argmax_k |w_n|^2 . P[k]

since keeping pattern p leaves the error ||w_n||^2 - |w_n|^2 . p. Kernels that are already all zero
stay removed (mask 0). Jitted, and vmapped over the kernels.

OU-group granularity (`granularity="ou_group"`, docs/MODEL.md section 8): the filters
of a layer form groups of `group_size` consecutive filters (the packed mapping's column groups in
the given order; the last group may be smaller), and the kernels of one group at one input
channel share one pattern. The projection onto that set picks, per (channel, group),

    k* = argmax_k sum_{f in group} |w_(c,f)|^2 . P[k],

the pattern keeping the most squared weight of the whole group; a group whose kernels at `c` are
all zero stays removed there.

References:
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (pattern projection, eq. for Z-update).
  Zhang et al., "A Systematic DNN Weight Pruning Framework using ADMM", ECCV 2018 (projection step).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.patterns.codes import (KERNEL_POSITIONS, check_conv_kernel, code_to_mask,
                                    expand_filter_groups, kernels_as_rows, library_matrix,
                                    rows_as_kernels, sum_filter_groups)
from rramjax.plan import DEFAULT_GROUP_SIZE

GRANULARITIES = ("kernel", "ou_group")


def as_library_matrix(library):
  """A library as its `(K, 9)` float 0/1 matrix.

  Python or numpy codes are validated (`validate_library`). A jax array, possibly traced, is how jitted
  callers such as ADMM pass a fixed library: a `(K, 9)` matrix is used as is and 1-D codes are
  expanded with `code_to_mask`, without value checks (they cannot run on traced values).

  Example:
    >>> import numpy as np
    >>> np.asarray(as_library_matrix([16, 27])).astype(int)  # the centre; the top-left 2x2 square
    array([[0, 0, 0, 0, 1, 0, 0, 0, 0],
           [1, 1, 0, 1, 1, 0, 0, 0, 0]])
  """
  if isinstance(library, jax.Array):
    if library.ndim == 1:
      return code_to_mask(library)
    _check_matrix_shape(library.shape)
    return library.astype(jnp.float32)
  array = np.asarray(library)
  if array.ndim == 2:
    _check_matrix_shape(array.shape)
    return jnp.asarray(array, jnp.float32)
  return library_matrix(array)


def _check_matrix_shape(shape) -> None:
  if len(shape) != 2 or shape[1] != KERNEL_POSITIONS or shape[0] < 1:
    raise ConfigError(f"A library matrix must have shape (K, 9) with K >= 1, got {tuple(shape)}.")


def _choose(w_row, patterns):
  """Index of the pattern keeping the most squared weight (first on ties), -1 for a zero kernel."""
  choice = jnp.argmax(patterns @ jnp.square(w_row)).astype(jnp.int32)
  return jnp.where(jnp.any(w_row != 0), choice, -1)


def _project_kernel(w_row, patterns):
  choice = _choose(w_row, patterns)
  mask = jnp.where(choice >= 0, patterns[jnp.maximum(choice, 0)], 0.0).astype(w_row.dtype)
  return w_row * mask, mask


@jax.jit
def _project_layer(w, patterns):
  rows, mask = jax.vmap(_project_kernel, in_axes=(0, None))(kernels_as_rows(w), patterns)
  cin, cout = w.shape[2:]
  return rows_as_kernels(rows, cin, cout), rows_as_kernels(mask, cin, cout)


@jax.jit
def _choose_layer(w, patterns):
  return jnp.reshape(jax.vmap(_choose, in_axes=(0, None))(kernels_as_rows(w), patterns), w.shape[2:])


def _choose_energy(energy_row, patterns):
  """As `_choose`, from a row of summed squared weights (a group's)."""
  choice = jnp.argmax(patterns @ energy_row).astype(jnp.int32)
  return jnp.where(jnp.any(energy_row != 0), choice, -1)


def group_energy(w, group_size: int):
  """`(9, Cin, G)` summed squared weights of each (position, channel, filter group) of HWIO `w`."""
  return sum_filter_groups(jnp.square(jnp.reshape(w, (KERNEL_POSITIONS,) + w.shape[2:])), group_size)


@functools.partial(jax.jit, static_argnames="group_size")
def _choose_groups(w, patterns, group_size: int):
  """`(Cin, G)` library index of each (channel, group), -1 where the group's kernels are all zero."""
  energy = group_energy(w, group_size)
  rows = jnp.reshape(jnp.moveaxis(energy, 0, -1), (-1, KERNEL_POSITIONS))
  return jnp.reshape(jax.vmap(_choose_energy, in_axes=(0, None))(rows, patterns), energy.shape[1:])


@functools.partial(jax.jit, static_argnames="group_size")
def _project_groups(w, patterns, group_size: int):
  choice = _choose_groups(w, patterns, group_size)                       # (Cin, G)
  rows = jnp.where(choice[..., None] >= 0, patterns[jnp.maximum(choice, 0)], 0.0)  # (Cin, G, 9)
  mask = expand_filter_groups(jnp.moveaxis(rows, -1, 0), group_size, w.shape[3])  # (9, Cin, Cout)
  mask = jnp.reshape(mask, w.shape).astype(w.dtype)
  return w * mask, mask


def check_granularity(granularity: str, group_size: int) -> None:
  """Raises ConfigError for an unknown granularity or a group size that is not an int >= 1."""
  if granularity not in GRANULARITIES:
    raise ConfigError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}.")
  if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
    raise ConfigError(f"group_size (filters per OU column group) must be an int >= 1, got {group_size!r}.")


def project_to_library(w, library, granularity: str = "kernel", group_size: int = DEFAULT_GROUP_SIZE):
  """Projects every kernel (or OU group of kernels) of a layer onto its best library pattern.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    library: pattern codes, or its `(K, 9)` 0/1 matrix (see `as_library_matrix`).
    granularity: 'kernel' (each kernel its own pattern) or 'ou_group' (the kernels of `group_size`
      consecutive filters at one input channel share the pattern keeping the most of their
      squared weight; see the module doc).
    group_size: filters per group for 'ou_group': the packed mapping's
      `floor(ou_cols / columns_per_weight)` (4 at the paper's defaults).

  Returns:
    `(w_projected, mask)`, both HWIO like `w`: `mask` is the chosen pattern of each kernel (all zero
    for a kernel, or with 'ou_group' a group at a channel, that was all zero) and
    `w_projected = w * mask`.

  References:
    Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138.

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 1, 2), np.float32)
    >>> w[1, 1, 0, 0], w[0, 0, 0, 1] = 1.0, 3.0   # filter 0 has its centre, filter 1 a corner
    >>> library = (1 << 4, 1 << 0)                 # centre only, top-left only
    >>> _, per_kernel = project_to_library(w, library)
    >>> _, per_group = project_to_library(w, library, granularity="ou_group", group_size=2)
    >>> np.asarray(per_kernel)[0, 0, 0].tolist(), np.asarray(per_group)[0, 0, 0].tolist()
    ([0.0, 1.0], [1.0, 1.0])
  """
  return _at_granularity(_project_layer, _project_groups, w, library, granularity, group_size)


def projection_choice(w, library, granularity: str = "kernel", group_size: int = DEFAULT_GROUP_SIZE):
  """Index into the library of each kernel's (or group's) projected pattern.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    library: pattern codes or `(K, 9)` matrix.
    granularity, group_size: as in `project_to_library`.

  Returns:
    int32 `(Cin, Cout)` for 'kernel': argmax_k |W_(c,f)|^2 . P[k] (first on ties), -1 for all-zero
    kernels; `(Cin, ceil(Cout / group_size))` per (channel, group) for 'ou_group'.

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 1, 3), np.float32)
    >>> w[0, 0, 0, 0], w[2, 1, 0, 1] = 1.0, 1.0  # top-left corner; the position below the centre
    >>> np.asarray(projection_choice(w, [0b000011011, 0b010111010]))  # kernel 2 is all zero
    array([[ 0,  1, -1]], dtype=int32)
  """
  return _at_granularity(_choose_layer, _choose_groups, w, library, granularity, group_size)


def _at_granularity(per_kernel, per_group, w, library, granularity, group_size):
  """Checks the arguments and calls `per_kernel(w, P)` or `per_group(w, P, group_size)`."""
  check_conv_kernel(w)
  check_granularity(granularity, group_size)
  patterns = as_library_matrix(library)
  if granularity == "kernel":
    return per_kernel(jnp.asarray(w), patterns)
  return per_group(jnp.asarray(w), patterns, int(group_size))
