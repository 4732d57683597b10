"""Functional simulator of a mapped 3x3 conv layer, in the integer domain (numpy).

It runs the OU tiles of the layer's plan (`rramjax.plan`, scheme 'pattern' or 'packed'),
vectorised over pixels and tiles (docs/MODEL.md sections 4 and 5; docs/MAPPER.md, "Functional
simulator"):
  1. input preprocessing unit: gather each crossbar row's pixel, row `9*c + t` reading channel `c`
     at kernel position `t` (SAME zero padding, stride 1), and cut every input into DAC slices, LSB
     first: `slice_s = (x >> (s * dac_bits)) & (2^dac_bits - 1)`;
  2. each OU tile multiplies its rows' slices by its cells: one partial sum per pixel, column and
     slice, digitised by the ADC when on: `d = LSB * min(floor(sum / LSB + 0.5), 2^adc_bits - 1)`.
     A pattern tile's sum runs over taps of one kernel pattern at one input channel; a packed
     tile's over the needed rows of a column group, across input channels, where a row that a
     filter does not keep holds no cell in that filter's columns (it adds 0);
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
from rramjax.mapper.placement import Placement
from rramjax.plan import POSITIONS, OuPlan, kernel_patterns, make_plan

# Partial sums held at once (pixels x slices x tiles x columns): bounds the memory to ~64 MB.
_CHUNK_SUMS = 1 << 23


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
  levels, shifts = hw.cell_max_level, hw.cell_bits * np.arange(hw.cells_per_weight)
  if hw.sign_encoding == "differential":
    parts, signs = [np.maximum(w, 0), np.maximum(-w, 0)], [1, -1]
  else:
    parts, signs = [w + hw.weight_offset], [1]
  cells = np.concatenate([(part[..., None] >> shifts) & levels for part in parts], axis=-1)
  scale = np.concatenate([sign * (1 << shifts) for sign in signs])
  return cells, scale


def adc(sums: np.ndarray, hw: HardwareConfig, lsb=None) -> np.ndarray:
  """Noise-free ADC: `LSB * min(floor(sum / LSB + 0.5), hw.adc_max_code)`, exact for integer LSBs.

  The numpy twin of the crossbar model's ADC law (`rramjax.hardware.quant.adc_code`/`adc_clip`):
  the mapper imports no jax, and this simulator is the independent check of that model.
  """
  lsb = hw.adc_lsb if lsb is None else lsb
  if not lsb > 0:
    raise ValueError(f"The ADC step lsb must be > 0, got {lsb!r}.")
  top = hw.adc_max_code
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
  w_max = hw.weight_max_code
  if x.min() < 0 or x.max() > hw.input_max_code:
    raise ValueError(f"x_codes must lie in [0, {hw.input_max_code}] (input_bits={hw.input_bits}).")
  if w.min() < -w_max or w.max() > w_max:
    raise ValueError(f"w_codes must lie in [{-w_max}, {w_max}] (weight_bits={hw.weight_bits}).")
  return x.astype(np.int64), w.astype(np.int64)


def simulate_layer(x_codes, w_codes, mask, hw: HardwareConfig | None = None, adc_on: bool = False,
                   lsb=None, placement: Placement | None = None, *, scheme: str = "pattern",
                   filter_order: str = "given", plan: OuPlan | None = None) -> np.ndarray:
  """Runs one mapped 3x3 conv layer (stride 1, SAME padding) on the OU tiles of its plan.

  Args:
    x_codes: `(N, H, W, Cin)` unsigned input codes.
    w_codes: `(3, 3, Cin, Cout)` signed weight codes (entries outside the mask are ignored).
    mask: `(3, 3, Cin, Cout)`, nonzero = kept.
    hw: hardware config; the paper's defaults when None.
    adc_on: digitise every OU partial sum (no noise); off means exact sums.
    lsb: ADC step override (default `hw.adc_lsb`, the 'max' full scale).
    placement: a `Placement` whose plan to run (its placement does not change the result).
    scheme, filter_order: the plan to make when neither `plan` nor `placement` is given.
    plan: the `OuPlan` to run (made for this mask with this `hw`).

  Returns:
    `(N, H, W, Cout)` outputs (int64; float64 with a non-integer `lsb`).

  Raises:
    ValueError: codes out of range or of the wrong shape, or a plan made for another mask.
  """
  hw = hw or HardwareConfig()
  mask = check_conv_mask(mask)
  x, w = _check_codes(x_codes, w_codes, mask, hw)
  plan = placement.plan if placement is not None else plan
  plan = plan if plan is not None else make_plan(mask, hw, scheme, filter_order)
  if plan.codes.shape != mask.shape[2:] or not np.array_equal(plan.codes, kernel_patterns(mask)):
    raise ValueError("The plan was made for another mask; make it with make_plan(mask, hw, ...).")
  patches = gather_patches(x)
  slice_shift = hw.dac_bits * np.arange(hw.input_slices)
  # Crossbar row 9*c + t: channel-major, like the plan's rows.
  rows = patches.swapaxes(3, 4).reshape(*patches.shape[:3], -1)
  slices = (rows[None] >> slice_shift[:, None, None, None, None]) & hw.dac_max_level
  cells, column_scale = weight_cells(w, hw)
  cells = cells * mask.reshape(POSITIONS, *mask.shape[2:], 1)     # no cell outside the mask
  crossbar = cells.swapaxes(0, 1).reshape(POSITIONS * mask.shape[2], -1)  # (9*Cin, Cout*wc)
  dtype = np.result_type(np.int64, np.asarray(lsb or 1).dtype)
  y = np.zeros((x.shape[0] * x.shape[1] * x.shape[2], mask.shape[3]), dtype)
  scale = (1 << slice_shift)
  chunk = max(1, _CHUNK_SUMS // max(1, slices[..., 0].size * max(plan.tile_cols.shape[1], 1)))
  for start in range(0, plan.num_tiles, chunk):
    tiles = slice(start, start + chunk)
    sums = _tile_sums(slices, crossbar, plan.tile_rows[tiles], plan.tile_cols[tiles])
    if adc_on:
      sums = adc(sums, hw, lsb)
    cols = plan.tile_cols[tiles]
    weight = np.where(cols >= 0, column_scale[cols % plan.columns_per_weight], 0)
    shifted = np.tensordot(scale, sums, axes=1) * weight           # (N, H, W, T, C)
    np.add.at(y.T, np.maximum(cols, 0).ravel() // plan.columns_per_weight,
              shifted.reshape(len(y), -1).T)
  y = y.reshape(*x.shape[:3], -1)
  if hw.sign_encoding == "offset":
    kept = mask.reshape(POSITIONS, *mask.shape[2:]).astype(np.int64)
    y -= hw.weight_offset * np.einsum("nhwtc,tcf->nhwf", patches, kept)
  return y


def _tile_sums(slices, crossbar, tile_rows, tile_cols):
  """OU partial sums `(S, N, H, W, T, C)` of the tiles: padding rows and columns add nothing."""
  rows, cols = np.maximum(tile_rows, 0), np.maximum(tile_cols, 0)
  cells = crossbar[rows[:, :, None], cols[:, None, :]]              # (T, R, C)
  cells = cells * ((tile_rows >= 0)[:, :, None] & (tile_cols >= 0)[:, None, :])
  return np.einsum("snhwtr,trc->snhwtc", slices[..., rows], cells)
