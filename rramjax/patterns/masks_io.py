"""Mask export/import: the format the mapper reads.

An `.npz` with one uint8 HWIO 0/1 array per 3x3 conv layer, in network order, under the keys
`conv_00`, `conv_01`, ... (two digits, more when there are over 100 layers).
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from rramjax.errors import MaskError

_KEY = re.compile(r"conv_(\d+)")


def mask_key(layer: int) -> str:
  """npz key of conv layer `layer` (0-based, network order)."""
  return f"conv_{layer:02d}"


def _as_uint8_mask(mask, layer: int) -> np.ndarray:
  mask = np.asarray(mask)
  if mask.ndim != 4 or mask.shape[:2] != (3, 3):
    raise MaskError(f"Mask of conv layer {layer} must be HWIO (3, 3, Cin, Cout), got {mask.shape}.")
  if not np.isin(mask, (0, 1)).all():
    raise MaskError(f"Mask of conv layer {layer} must hold only 0 and 1.")
  return mask.astype(np.uint8)


def save_masks_npz(path: str | os.PathLike, masks: Sequence) -> str:
  """Writes masks as `.npz` (uint8, keys conv_00, conv_01, ... in network order).

  Args:
    path: output file; numpy appends `.npz` if missing.
    masks: HWIO 0/1 arrays (bool, int or float), one per 3x3 conv layer.

  Returns:
    The path written. Raises MaskError for a mask that is not a 0/1 HWIO 3x3 array.
  """
  if not len(masks):
    raise MaskError("save_masks_npz needs at least one mask.")
  arrays = {mask_key(i): _as_uint8_mask(m, i) for i, m in enumerate(masks)}
  path = os.fspath(path)
  path = path if path.endswith(".npz") else path + ".npz"
  np.savez_compressed(path, **arrays)
  return path


def load_masks_npz(path: str | os.PathLike) -> list[np.ndarray]:
  """Reads masks written by `save_masks_npz`, as uint8 HWIO arrays in network order.

  Raises:
    MaskError: missing file, a key not named conv_NN, layers missing from the sequence, or a mask
      that is not a 0/1 HWIO 3x3 array.
  """
  try:
    with np.load(os.fspath(path)) as data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError) as error:
    raise MaskError(f"Cannot read mask file {os.fspath(path)!r}: {error}") from error
  layers = {}
  for key in arrays:
    match = _KEY.fullmatch(key)
    if not match:
      raise MaskError(f"Mask file {os.fspath(path)!r} has key {key!r}; expected conv_00, conv_01, ...")
    layers[int(match.group(1))] = arrays[key]
  if sorted(layers) != list(range(len(layers))):
    raise MaskError(f"Mask file {os.fspath(path)!r} must hold conv_00 .. conv_{len(layers) - 1:02d} "
                    f"without gaps, got layers {sorted(layers)}.")
  return [_as_uint8_mask(layers[i], i) for i in range(len(layers))]
