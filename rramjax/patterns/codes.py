"""Pattern codes: a 3x3 kernel's kept positions as a 9-bit integer.

Position `i = 3*kh + kw` of a flax HWIO kernel `W[kh, kw, c, f]` is bit `i` of the code, so code
`0b000010000` (16) keeps the centre only, and code 0 is a removed (all-zero) kernel. The numpy
conversions live in `rramjax.plan` (`kernel_patterns`, `codes_to_masks`, `masks_to_codes`); this
module re-exports them under the pattern names and keeps jax versions only where a traced value
must be converted (`code_to_mask`, used on libraries inside jitted ADMM steps).

References:
  Niu et al., "PatDNN: Achieving Real-Time DNN Execution on Mobile Devices with Pattern-based
  Weight Pruning", ASPLOS 2020, arXiv:2001.00138 (kernel patterns).
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.hardware.config import KERNEL_POSITIONS
from rramjax.plan import MAX_CODE, POPCOUNT, kernel_patterns, masks_to_codes


def check_conv_kernel(w, name: str = "w") -> None:
  """Raises ConfigError unless `w` is a 3x3 conv kernel in flax HWIO layout (3, 3, Cin, Cout)."""
  shape = tuple(np.shape(w))
  if len(shape) != 4 or shape[:2] != (3, 3) or 0 in shape:
    raise ConfigError(f"{name} must be a 3x3 conv kernel of shape (3, 3, Cin, Cout) (flax HWIO), "
                      f"got shape {shape}.")


def kernels_as_rows(w):
  """Reshapes HWIO `(3, 3, Cin, Cout)` to `(Cin*Cout, 9)`: one row per kernel, columns i = 3*kh+kw."""
  cin, cout = w.shape[2], w.shape[3]
  return jnp.reshape(jnp.transpose(jnp.asarray(w), (2, 3, 0, 1)), (cin * cout, KERNEL_POSITIONS))


def rows_as_kernels(rows, cin: int, cout: int):
  """Inverse of `kernels_as_rows`: `(Cin*Cout, 9)` back to HWIO `(3, 3, Cin, Cout)`."""
  return jnp.transpose(jnp.reshape(rows, (cin, cout, 3, 3)), (2, 3, 0, 1))


def pattern_codes(mask_or_w) -> np.ndarray:
  """Pattern code of every kernel of a layer.

  Args:
    mask_or_w: HWIO array `(3, 3, Cin, Cout)`, a mask or weights; a position is kept where nonzero.

  Returns:
    int64 numpy array `(Cin, Cout)`: bit `3*kh + kw` set where the kernel keeps that position; 0
    marks a removed kernel.
  """
  check_conv_kernel(mask_or_w, "mask_or_w")
  return kernel_patterns(np.asarray(mask_or_w))


@functools.partial(jax.jit, static_argnames="square")
def code_to_mask(codes, square: bool = False):
  """Expands pattern codes to 0/1 masks.

  Args:
    codes: int array (any shape `...`) of pattern codes.
    square: return `(..., 3, 3)` pictures (`[kh, kw]`) instead of `(..., 9)` rows.

  Returns:
    float32 array `(..., 9)` (or `(..., 3, 3)`), 1 where the pattern keeps the position.
  """
  codes = jnp.asarray(codes, jnp.int32)
  bits = jnp.arange(KERNEL_POSITIONS, dtype=jnp.int32)
  mask = ((codes[..., None] >> bits) & 1).astype(jnp.float32)
  return jnp.reshape(mask, mask.shape[:-1] + (3, 3)) if square else mask


def mask_to_code(rows) -> np.ndarray:
  """Inverse of `code_to_mask`: `(..., 9)` masks (nonzero = kept) to int64 codes `(...)` (numpy)."""
  return masks_to_codes(np.asarray(rows))


def pattern_size(codes) -> np.ndarray:
  """Number of kept positions (popcount) of each code, as a numpy int array."""
  return POPCOUNT[np.asarray(codes, np.int64)]


def sum_filter_groups(x, group_size: int):
  """Sums consecutive groups of `group_size` entries of the last (filter) axis; numpy or jax.

  A last, partial group sums what it has (the padding adds zeros), so `(..., Cout)` becomes
  `(..., ceil(Cout / group_size))`. Jit-safe: the shapes are static.
  """
  xp = jnp if isinstance(x, jax.Array) else np
  groups = -(-x.shape[-1] // group_size)
  pad = [(0, 0)] * (x.ndim - 1) + [(0, groups * group_size - x.shape[-1])]
  return xp.pad(x, pad).reshape(*x.shape[:-1], groups, group_size).sum(-1)


def expand_filter_groups(x, group_size: int, cout: int):
  """Inverse layout of `sum_filter_groups`: `(..., groups)` repeated to `(..., cout)` filters."""
  xp = jnp if isinstance(x, jax.Array) else np
  return xp.repeat(x, group_size, axis=-1)[..., :cout]


def validate_library(library: Iterable[int]) -> tuple[int, ...]:
  """Checks a pattern library and returns it as a tuple of Python ints.

  Args:
    library: pattern codes, each in 1..511, no duplicates, 1 to 511 of them.

  Returns:
    The codes as a tuple, in the given order (the order fixes projection tie-breaks).

  Raises:
    ConfigError: empty library, more than 511 patterns, a non-integer, a code out of range (0 is a
      removed kernel, not a pattern) or a duplicate.
  """
  codes = [int(c) for c in np.asarray(library).reshape(-1)] if _all_integral(library) else None
  if codes is None:
    raise ConfigError(f"A pattern library must hold integer codes, got {library!r}.")
  if not codes:
    raise ConfigError("A pattern library needs at least one pattern.")
  if len(codes) > MAX_CODE:
    raise ConfigError(f"A pattern library holds at most {MAX_CODE} patterns (the nonempty 3x3 "
                      f"masks), got {len(codes)}.")
  bad = [c for c in codes if not 1 <= c <= MAX_CODE]
  if bad:
    raise ConfigError(f"Pattern codes must lie in 1..{MAX_CODE} (bit 3*kh+kw set = position kept; "
                      f"0 is a removed kernel), got {bad}.")
  dupes = sorted({c for c in codes if codes.count(c) > 1})
  if dupes:
    raise ConfigError(f"A pattern library must not repeat a pattern; repeated codes: {dupes}.")
  return tuple(codes)


def _all_integral(library) -> bool:
  array = np.asarray(library)
  return array.dtype.kind in "iu" or (array.size == 0 and array.dtype.kind == "f")


def library_matrix(library: Sequence[int]):
  """Pattern library as a `(K, 9)` float32 0/1 matrix `P` (row k = pattern k), after validation."""
  return code_to_mask(np.asarray(validate_library(library), np.int32))


def pattern_picture(code: int) -> str:
  """A 3x3 text picture of a pattern: '#' kept, '.' removed, rows kh = 0..2 top to bottom."""
  code = int(code)
  if not 0 <= code <= MAX_CODE:
    raise ConfigError(f"A pattern code must lie in 0..{MAX_CODE}, got {code}.")
  return "\n".join("".join("#" if code >> (3 * kh + kw) & 1 else "." for kw in range(3))
                   for kh in range(3))
