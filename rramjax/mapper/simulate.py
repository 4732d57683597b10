"""Functional simulator of a pattern-mapped 3x3 conv layer, in the integer domain (numpy).

It runs the mapped hardware, tile by tile, vectorised over pixels:
  1. input preprocessing unit: gather each pattern's pixels (SAME zero padding, stride 1) and cut
     every input into DAC slices, LSB first: `slice_s = (x >> (s * dac_bits)) & (2^dac_bits - 1)`;
  2. each OU tile multiplies its rows' slices by its cells: one partial sum per pixel, column and
     slice, digitised by the ADC when on: `d = LSB * min(floor(sum / LSB + 0.5), 2^adc_bits - 1)`;
  3. output indexing unit: shift-and-add each column (`2^(j*cell_bits) * 2^(s*dac_bits)`) into its
     filter, then the digital offset correction.

Contract (shared with the `ou` crossbar model): inputs `x_codes` NHWC in `[0, 2^input_bits - 1]`,
weights `w_codes` HWIO in `[-(2^(b-1) - 1), 2^(b-1) - 1]` with `b = weight_bits`. Offset encoding
stores `u = w + 2^(b-1)` in `cells_per_weight` cells `cell_j = (u >> (j*cell_bits)) & (2^cell_bits-1)`
and subtracts `2^(b-1) * sum_{c} sum_{taps in pattern(c, f)} x` digitally; differential encoding
stores `max(w, 0)` and `max(-w, 0)` in separate columns and subtracts the negative columns. Without
the ADC (or with a wide one) the result equals the integer convolution of `x_codes` with
`w_codes * mask`.
"""

from __future__ import annotations

import numpy as np

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.masks import check_conv_mask
from rramjax.mapper.placement import Placement, place_tiles


def gather_patches(x: np.ndarray) -> np.ndarray:
  """SAME-padded 3x3 neighbourhoods: `(N, H, W, 9, C)`, position `3*kh + kw` reads `x[h+kh-1, w+kw-1]`."""
  n, h, w, _ = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return np.stack([padded[:, kh:kh + h, kw:kw + w, :] for kh in range(3) for kw in range(3)], axis=3)


def weight_cells(w_codes: np.ndarray, hw: HardwareConfig) -> tuple[np.ndarray, np.ndarray]:
  """Cell levels of every weight and the signed shift of each of its `wc` columns.

  Returns:
    `(cells, scale)`: `cells[kh*3+kw, c, f, j]` in `0..2^cell_bits-1` and `scale[j]`, the
    `+-2^(cell*cell_bits)` that column `j` of a weight contributes with.
  """
  w = w_codes.reshape(9, *w_codes.shape[2:]).astype(np.int64)
  levels, shifts = 2**hw.cell_bits - 1, hw.cell_bits * np.arange(hw.cells_per_weight)
  if hw.sign_encoding == "differential":
    parts, signs = [np.maximum(w, 0), np.maximum(-w, 0)], [1, -1]
  else:
    parts, signs = [w + 2**(hw.weight_bits - 1)], [1]
  cells = np.concatenate([(part[..., None] >> shifts) & levels for part in parts], axis=-1)
  scale = np.concatenate([sign * (1 << shifts) for sign in signs])
  return cells, scale


def adc(sums: np.ndarray, hw: HardwareConfig, lsb=None) -> np.ndarray:
  """Noise-free ADC: `LSB * min(floor(sum / LSB + 0.5), 2^adc_bits - 1)`, exact for integer LSBs."""
  lsb = hw.adc_lsb if lsb is None else lsb
  if not lsb > 0:
    raise ValueError(f"The ADC step lsb must be > 0, got {lsb!r}.")
  top = hw.adc_levels - 1
  if float(lsb).is_integer():
    lsb = int(lsb)
    return lsb * np.minimum((2 * sums + lsb) // (2 * lsb), top)
  return lsb * np.minimum(np.floor(sums / lsb + 0.5), top)


def _check_codes(x_codes, w_codes, mask, hw):
  x, w = np.asarray(x_codes), np.asarray(w_codes)
  if x.ndim != 4 or x.shape[-1] != mask.shape[2]:
    raise ValueError(f"x_codes must be NHWC with C = Cin = {mask.shape[2]}, got shape {x.shape}.")
  if w.shape != mask.shape:
    raise ValueError(f"w_codes must have the mask's shape {mask.shape}, got {w.shape}.")
  w_max = 2**(hw.weight_bits - 1) - 1
  if x.min() < 0 or x.max() > 2**hw.input_bits - 1:
    raise ValueError(f"x_codes must lie in [0, {2**hw.input_bits - 1}] (input_bits={hw.input_bits}).")
  if w.min() < -w_max or w.max() > w_max:
    raise ValueError(f"w_codes must lie in [{-w_max}, {w_max}] (weight_bits={hw.weight_bits}).")
  return x.astype(np.int64), w.astype(np.int64)


def simulate_layer(x_codes, w_codes, mask, hw: HardwareConfig | None = None, adc_on: bool = False,
                   lsb=None, placement: Placement | None = None) -> np.ndarray:
  """Runs one pattern-mapped 3x3 conv layer (stride 1, SAME padding) on its OU tiles.

  Args:
    x_codes: `(N, H, W, Cin)` unsigned input codes.
    w_codes: `(3, 3, Cin, Cout)` signed weight codes (entries outside the mask are ignored).
    mask: `(3, 3, Cin, Cout)`, nonzero = kept.
    hw: hardware config; the paper's defaults when None.
    adc_on: digitise every OU partial sum (no noise); off means exact sums.
    lsb: ADC step override (default `hw.adc_lsb`, the 'max' full scale).
    placement: a precomputed `place_tiles(mask, hw)`, else computed here.

  Returns:
    `(N, H, W, Cout)` outputs (int64; float64 with a non-integer `lsb`).
  """
  hw = hw or HardwareConfig()
  mask = check_conv_mask(mask)
  x, w = _check_codes(x_codes, w_codes, mask, hw)
  placement = placement or place_tiles(mask, hw)
  patches = gather_patches(x)
  slice_shift = hw.dac_bits * np.arange(hw.input_slices)
  slices = (patches[None] >> slice_shift[:, None, None, None, None, None]) & (2**hw.dac_bits - 1)
  cells, column_scale = weight_cells(w, hw)
  y = np.zeros(x.shape[:3] + (mask.shape[3],), np.result_type(np.int64, np.asarray(lsb or 1).dtype))
  for tile in range(placement.num_tiles):
    y += _tile_output(placement, tile, slices, cells, column_scale, slice_shift, hw, adc_on, lsb, y.shape[-1])
  if hw.sign_encoding == "offset":
    kept = mask.reshape(9, *mask.shape[2:]).astype(np.int64)
    y -= 2**(hw.weight_bits - 1) * np.einsum("nhwtc,tcf->nhwf", patches, kept)
  return y


def _tile_output(placement, tile, slices, cells, column_scale, slice_shift, hw, adc_on, lsb, cout):
  """One tile's contribution to every filter: OU sums, ADC, shift-and-add, scatter to filters."""
  taps = placement.tile_taps(tile)
  channel = placement.blocks.channel[placement.tiles["block"][tile]]
  filters, cell = placement.tile_columns(tile)
  rows = slices[..., taps, channel]                      # (S, N, H, W, rows)
  sums = rows @ cells[taps[:, None], channel, filters[None, :], cell[None, :]]  # (S, N, H, W, cols)
  if adc_on:
    sums = adc(sums, hw, lsb)
  shifted = np.tensordot(1 << slice_shift, sums, axes=1) * column_scale[cell]  # (N, H, W, cols)
  scatter = np.zeros((len(filters), cout), np.int64)
  scatter[np.arange(len(filters)), filters] = 1
  return shifted @ scatter
