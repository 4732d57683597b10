"""Placement of OU tiles into crossbar arrays (DESIGN.md section 4, [choice]).

Each array of `array_rows x array_cols` is cut into `array_cols / ou_cols` column *strips* of
`ou_cols` columns and `array_rows` rows. A tile (at most `ou_rows x ou_cols`) takes a run of rows of
one strip, left-aligned (a partial tile leaves the rest of its rows' strip width empty). Strips are
filled by first-fit decreasing on tile height; strip `g` is strip `g % (array_cols / ou_cols)` of
array `g // (array_cols / ou_cols)`. Tiles never share rows inside a strip, so blocks that need
different inputs never share an OU.

First-fit decreasing is computed one tile height at a time: for equal-sized items first fit fills the
open strips in order, then opens new ones, so each height class is a cumulative sum, not a loop over
tiles (VGG16 has ~10^5 tiles).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.blocks import Blocks, cut_tiles, pattern_blocks, pattern_taps
from rramjax.mapper.masks import check_conv_mask


def first_fit_decreasing(heights: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
  """Packs items of integer height into bins (strips) of `capacity` rows, first-fit decreasing.

  Ties keep their input order. Every height must be in `1..capacity`.

  Args:
    heights: `(n,)` item heights.
    capacity: rows per strip.

  Returns:
    `(strip, offset)`: each item's strip index and first row.
  """
  strip = np.zeros(len(heights), np.int64)
  offset = np.zeros(len(heights), np.int64)
  fill = np.zeros(0, np.int64)
  order = np.argsort(-heights, kind="stable")
  for height in np.unique(heights)[::-1]:
    items = order[heights[order] == height]
    room = (capacity - fill) // height
    missing = len(items) - room.sum()
    if missing > 0:
      per_strip = capacity // height
      opened = -(-missing // per_strip)
      fill = np.concatenate([fill, np.zeros(opened, np.int64)])
      room = np.concatenate([room, np.full(opened, per_strip, np.int64)])
    ends = np.cumsum(room)
    rank = np.arange(len(items))
    bins = np.searchsorted(ends, rank, side="right")
    strip[items] = bins
    offset[items] = fill[bins] + (rank - (ends[bins] - room[bins])) * height
    fill = fill + np.bincount(bins, minlength=len(fill)) * height
  return strip, offset


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where every OU tile of one layer sits.

  Attributes:
    blocks: the layer's pattern blocks.
    tiles: parallel int64 arrays, one entry per tile: `block`, `tap_start`, `rows`, `col_start`,
      `cols` (see `cut_tiles`) and `array`, `strip` (inside the array), `row` (first row in the
      array), `col` (first column in the array: `strip * ou_cols`).
    array_rows, array_cols, ou_cols: the geometry it was placed on.
    columns_per_weight: `wc`, to recover a column's filter and cell.
    num_strips: strips used (all arrays together).
  """
  blocks: Blocks
  tiles: dict
  array_rows: int
  array_cols: int
  ou_cols: int
  columns_per_weight: int
  num_strips: int

  @property
  def num_tiles(self) -> int:
    return len(self.tiles["block"])

  @property
  def num_arrays(self) -> int:
    return -(-self.num_strips // (self.array_cols // self.ou_cols))

  def ou_per_array(self) -> np.ndarray:
    """OU activations per pixel and slice of each array (one per tile)."""
    return np.bincount(self.tiles["array"], minlength=self.num_arrays)

  def tile_taps(self, tile: int) -> np.ndarray:
    """Kernel positions (`3*kh + kw`) feeding the tile's rows, top to bottom."""
    block, start = self.tiles["block"][tile], self.tiles["tap_start"][tile]
    return pattern_taps(self.blocks.pattern[block])[start:start + self.tiles["rows"][tile]]

  def tile_columns(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """`(filter, cell)` of each of the tile's columns, left to right (cell in `0..wc-1`)."""
    block = self.tiles["block"][tile]
    columns = self.tiles["col_start"][tile] + np.arange(self.tiles["cols"][tile])
    filters = self.blocks.block_filters(block)
    return filters[columns // self.columns_per_weight], columns % self.columns_per_weight

  def records(self) -> Iterator[dict]:
    """One plain dict per tile: array, strip, row, rows, col, cols, channel, pattern, taps, filters."""
    for tile in range(self.num_tiles):
      block = self.tiles["block"][tile]
      filters, _ = self.tile_columns(tile)
      yield {
          "array": int(self.tiles["array"][tile]), "strip": int(self.tiles["strip"][tile]),
          "row": int(self.tiles["row"][tile]), "rows": int(self.tiles["rows"][tile]),
          "col": int(self.tiles["col"][tile]), "cols": int(self.tiles["cols"][tile]),
          "channel": int(self.blocks.channel[block]), "pattern": int(self.blocks.pattern[block]),
          "taps": self.tile_taps(tile).tolist(), "filters": sorted(set(filters.tolist())),
      }


def place_tiles(blocks, hw: HardwareConfig | None = None) -> Placement:
  """Cuts a layer's pattern blocks into OU tiles and places them into arrays.

  Args:
    blocks: `Blocks` from `pattern_blocks`, or a `(3, 3, Cin, Cout)` mask.
    hw: hardware config (array and OU geometry, `columns_per_weight`); paper defaults when None.

  Returns:
    The `Placement` (an empty one, with no arrays, when the layer keeps nothing).
  """
  hw = hw or HardwareConfig()
  if not isinstance(blocks, Blocks):
    blocks = pattern_blocks(check_conv_mask(blocks))
  tiles = cut_tiles(blocks, hw)
  strip, row = first_fit_decreasing(tiles["rows"], hw.array_rows)
  strips_per_array = hw.array_cols // hw.ou_cols
  tiles.update(array=strip // strips_per_array, strip=strip % strips_per_array, row=row,
               col=(strip % strips_per_array) * hw.ou_cols)
  return Placement(blocks=blocks, tiles=tiles, array_rows=hw.array_rows, array_cols=hw.array_cols,
                   ou_cols=hw.ou_cols, columns_per_weight=hw.columns_per_weight,
                   num_strips=int(strip.max()) + 1 if len(strip) else 0)
