"""Pattern projection: each kernel takes the library pattern that keeps the most squared weight.

For kernel rows `w_n` (9 positions) and a library matrix `P` (K, 9) of 0/1 rows, the Euclidean
projection onto "w_n is zero outside one library pattern" is `w_n * P[k*]` with

    k* = argmax_k |w_n|^2 . P[k]

since keeping pattern p leaves the error ||w_n||^2 - |w_n|^2 . p. Kernels that are already all zero
stay removed (mask 0). Jitted, and vmapped over the kernels.

References:
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (pattern projection, eq. for Z-update).
  Zhang et al., "A Systematic DNN Weight Pruning Framework using ADMM", ECCV 2018 (projection step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.patterns.codes import (KERNEL_POSITIONS, check_conv_kernel, code_to_mask,
                                    kernels_as_rows, library_matrix, rows_as_kernels)


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


def project_to_library(w, library):
  """Projects every kernel of a layer onto its best library pattern.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    library: pattern codes, or its `(K, 9)` 0/1 matrix (see `as_library_matrix`).

  Returns:
    `(w_projected, mask)`, both HWIO like `w`: `mask` is the chosen pattern of each kernel (all zero
    for a kernel that was all zero) and `w_projected = w * mask`.

  References:
    Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138.

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 1, 2), np.float32)           # one input channel, two filters
    >>> w[:, :, 0, 0] = [[1, 2, 0], [0, 3, 0], [0, 0, 0.5]]
    >>> w[1:, 1, 0, 1] = [1, 2]                            # the centre and the one below it
    >>> library = [0b000011011, 0b010111010]  # the top-left 2x2 square; the plus sign
    >>> w_projected, mask = project_to_library(w, library)
    >>> np.asarray(mask[:, :, 0, 0]).astype(int)  # the square keeps 1 + 4 + 9 of 14.25
    array([[1, 1, 0],
           [1, 1, 0],
           [0, 0, 0]])
    >>> np.asarray(w_projected[:, :, 0, 0])       # 0.5 was outside the pattern
    array([[1., 2., 0.],
           [0., 3., 0.],
           [0., 0., 0.]], dtype=float32)
  """
  check_conv_kernel(w)
  return _project_layer(jnp.asarray(w), as_library_matrix(library))


def projection_choice(w, library):
  """Index into the library of each kernel's projected pattern.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    library: pattern codes or `(K, 9)` matrix.

  Returns:
    int32 `(Cin, Cout)`: argmax_k |W_(c,f)|^2 . P[k] (first on ties), -1 for all-zero kernels.

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 1, 3), np.float32)
    >>> w[0, 0, 0, 0], w[2, 1, 0, 1] = 1.0, 1.0  # top-left corner; the position below the centre
    >>> np.asarray(projection_choice(w, [0b000011011, 0b010111010]))  # kernel 2 is all zero
    array([[ 0,  1, -1]], dtype=int32)
  """
  check_conv_kernel(w)
  return _choose_layer(jnp.asarray(w), as_library_matrix(library))
