"""Mask validation and mask files (`.npz` of HWIO arrays, one per conv layer, in network order).

A mask is any numeric or boolean array whose nonzero entries are the kept weights. Conv masks are
HWIO `(3, 3, Cin, Cout)` (flax layout); the layers outside the paper's scope (FC, 1x1) are `(Cin,
Cout)` or `(kh, kw, Cin, Cout)` and are mapped the baseline way.

File format: `np.savez(path, conv_00=..., conv_01=..., ...)`. Keys are put in network order by a
natural sort (so `conv_2` comes before `conv_10`); the optional key `out_hw` holds each conv layer's
output size, shape `(L,)` (square side) or `(L, 2)` (`H_out, W_out`).
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from rramjax.errors import ConfigError, MaskError
from rramjax.presets import conv_output_sizes

OUT_HW_KEY = "out_hw"


def _as_numeric(mask, name: str) -> np.ndarray:
  """Converts to an ndarray, rejecting object/string dtypes, empty arrays and NaN/inf."""
  try:
    array = np.asarray(mask)
  except Exception as err:  # ragged lists and the like
    raise MaskError(f"{name}: cannot be read as an array ({err}).") from err
  if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
    raise MaskError(f"{name}: must hold numbers or booleans, got dtype {array.dtype}.")
  if array.size == 0:
    raise MaskError(f"{name}: is empty (shape {array.shape}); every dimension must be >= 1.")
  if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
    raise MaskError(f"{name}: contains NaN or inf; a mask must be finite (nonzero = kept).")
  return array


def check_conv_mask(mask, name: str = "mask") -> np.ndarray:
  """Validates a 3x3 conv mask and returns it as a boolean HWIO array.

  Args:
    mask: `(3, 3, Cin, Cout)` array; nonzero entries are the kept weights.
    name: what to call the mask in error messages (e.g. the layer name).

  Returns:
    A boolean array of the same shape.

  Raises:
    MaskError: wrong rank, not 3x3, empty, NaN/inf or a non-numeric dtype.
  """
  array = _as_numeric(mask, name)
  if array.ndim != 4:
    raise MaskError(f"{name}: a conv mask must be a rank-4 HWIO array (3, 3, Cin, Cout), "
                    f"got rank {array.ndim} with shape {array.shape}.")
  if array.shape[:2] != (3, 3):
    raise MaskError(f"{name}: the mapper handles 3x3 kernels (HWIO shape (3, 3, Cin, Cout)), got "
                    f"shape {array.shape}; pass other layers as extra_layers (baseline mapping).")
  return array != 0


def check_extra_mask(mask, name: str = "mask") -> np.ndarray:
  """Validates an FC / 1x1 (or any non-pattern) layer's mask: `(Cin, Cout)` or `(kh, kw, Cin, Cout)`.

  Returns:
    A boolean `(rows, Cout)` array with `rows = kh * kw * Cin` (im2col rows).
  """
  array = _as_numeric(mask, name)
  if array.ndim == 2:
    return array != 0
  if array.ndim == 4:
    return (array != 0).reshape(-1, array.shape[-1])
  raise MaskError(f"{name}: an extra (FC / 1x1) layer mask must be (Cin, Cout) or (kh, kw, Cin, Cout), "
                  f"got shape {array.shape}.")


def _natural_key(name: str):
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def load_mask_file(path) -> tuple[list[str], list[np.ndarray], np.ndarray | None]:
  """Reads a mask `.npz`: layer names, boolean conv masks in network order, and `out_hw` if present.

  Raises:
    MaskError: a missing, unreadable or corrupt file, a file without masks, or a bad mask.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise MaskError(f"Mask file {path!r} does not exist; expected an .npz of HWIO conv masks "
                    f"(keys conv_00, conv_01, ... in network order).")
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {key: archive[key] for key in archive.files}
  except Exception as err:  # zip, pickle and format errors all mean the same thing to the user
    raise MaskError(f"Mask file {path!r} is not a readable .npz archive ({type(err).__name__}: {err}).") from err
  out_hw = arrays.pop(OUT_HW_KEY, None)
  if not arrays:
    raise MaskError(f"Mask file {path!r} holds no masks (keys: {sorted(arrays) or 'none'}).")
  names = sorted(arrays, key=_natural_key)
  masks = [check_conv_mask(arrays[name], f"{path}:{name}") for name in names]
  if out_hw is not None:
    out_hw = check_out_hw(out_hw, len(masks), f"{path}:{OUT_HW_KEY}")
  return names, masks, out_hw


def load_masks(path) -> list[np.ndarray]:
  """Loads the conv masks of an `.npz` file in network order (see the module docstring).

  Args:
    path: the `.npz` file.

  Returns:
    A list of boolean `(3, 3, Cin, Cout)` arrays.

  Raises:
    MaskError: a missing or corrupt file, or a bad mask in it.
  """
  return load_mask_file(path)[1]


def save_masks(path, masks: Sequence, out_hw=None) -> None:
  """Writes conv masks as `conv_00, conv_01, ...` (plus `out_hw` if given) to an `.npz`."""
  arrays = {f"conv_{i:02d}": np.asarray(mask) != 0 for i, mask in enumerate(masks)}
  if out_hw is not None:
    arrays[OUT_HW_KEY] = np.asarray(out_hw)
  np.savez_compressed(path, **arrays)


def check_out_hw(out_hw, num_layers: int, name: str = "out_hw") -> np.ndarray:
  """Validates per-layer output sizes (each a square side or an `(H, W)` pair); returns `(L, 2)` ints."""
  if isinstance(out_hw, (list, tuple)) and len(out_hw) == num_layers:
    # Sides and pairs may be mixed in a list: square each side first.
    out_hw = [np.broadcast_to(np.asarray(size), (2,)) if np.ndim(size) == 0 else size for size in out_hw]
  array = _as_numeric(out_hw, name)
  if array.ndim == 1:
    array = np.stack([array, array], axis=1)
  if array.ndim != 2 or array.shape != (num_layers, 2):
    raise MaskError(f"{name}: expected {num_layers} output sizes, shape ({num_layers},) or "
                    f"({num_layers}, 2), got shape {np.shape(out_hw)}.")
  if np.any(array < 1) or np.any(array != np.round(array)):
    raise MaskError(f"{name}: output sizes must be positive integers, got {array.tolist()}.")
  return array.astype(np.int64)


def pooled_out_hw(num_layers: int, input_size: int, pool_after: Sequence[int]) -> np.ndarray:
  """Output sides of a VGG-style stack: SAME 3x3 convs, a 2x2 pool after the listed layers.

  Args:
    num_layers: number of conv layers.
    input_size: the image side (32 for CIFAR, 224 for ImageNet).
    pool_after: zero-based indices of the conv layers followed by a 2x2 max-pool
      (VGG16: 1, 3, 6, 9, 12; `rramjax.presets.pool_after(VGG16_PLAN)`).

  Returns:
    `(num_layers, 2)` ints: each conv layer's output (before its pool).
  """
  pools = set(pool_after)
  plan = [entry for i in range(num_layers) for entry in ((1, "M") if i in pools else (1,))]
  try:
    return np.asarray(conv_output_sizes(plan, input_size), np.int64).reshape(num_layers, 2)
  except ConfigError as err:
    raise MaskError(f"Pooling after layers {sorted(pools)}: {err}") from err
