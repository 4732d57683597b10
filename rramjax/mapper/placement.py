"""Placement of a plan's OU tiles into crossbar arrays (docs/MODEL.md section 4, "Placement").

The tiles are those of the layer's `OuPlan` (`rramjax.plan`): pattern tiles or packed tiles alike.

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
import functools
from typing import Iterator

import numpy as np

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.masks import check_conv_mask
from rramjax.plan import Blocks, OuPlan, blocks_of_codes, make_plan


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
  """Where every OU tile of one layer's plan sits.

  Attributes:
    plan: the layer's `OuPlan` (tile `t` here is the plan's tile `t`).
    tiles: parallel int64 arrays, one entry per tile: `group` (the plan's pattern block or column
      group; also under `block`), `rows`, `cols`, and `array`, `strip` (inside the array), `row`
      (first row in the array), `col` (first column in the array: `strip * ou_cols`).
    array_rows, array_cols, ou_cols: the geometry it was placed on.
    num_strips: strips used (all arrays together).
  """
  plan: OuPlan
  tiles: dict
  array_rows: int
  array_cols: int
  ou_cols: int
  num_strips: int

  @property
  def scheme(self) -> str:
    return self.plan.scheme

  @property
  def columns_per_weight(self) -> int:
    return self.plan.columns_per_weight

  @functools.cached_property
  def blocks(self) -> Blocks:
    """The layer's pattern blocks (the pattern scheme's tile groups)."""
    return blocks_of_codes(self.plan.codes)

  @property
  def num_tiles(self) -> int:
    return self.plan.num_tiles

  @property
  def num_arrays(self) -> int:
    return -(-self.num_strips // (self.array_cols // self.ou_cols))

  def ou_per_array(self) -> np.ndarray:
    """OU activations per pixel and slice of each array (one per tile)."""
    return np.bincount(self.tiles["array"], minlength=self.num_arrays)

  def tile_channel_tap(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """`(channel, tap)` of each of the tile's rows, top to bottom."""
    return self.plan.tile_channel_tap(tile)

  def tile_taps(self, tile: int) -> np.ndarray:
    """Kernel positions (`3*kh + kw`) feeding the tile's rows, top to bottom."""
    return self.plan.tile_channel_tap(tile)[1]

  def tile_columns(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """`(filter, cell)` of each of the tile's columns, left to right (cell in `0..wc-1`)."""
    return self.plan.tile_filter_cell(tile)

  def records(self) -> Iterator[dict]:
    """One plain dict per tile: array, strip, row, rows, col, cols, group, channels, taps, filters."""
    for tile in range(self.num_tiles):
      channels, taps = self.tile_channel_tap(tile)
      filters, _ = self.tile_columns(tile)
      yield {
          "array": int(self.tiles["array"][tile]), "strip": int(self.tiles["strip"][tile]),
          "row": int(self.tiles["row"][tile]), "rows": int(self.tiles["rows"][tile]),
          "col": int(self.tiles["col"][tile]), "cols": int(self.tiles["cols"][tile]),
          "group": int(self.tiles["group"][tile]), "channels": channels.tolist(),
          "taps": taps.tolist(), "filters": sorted(set(filters.tolist())),
      }


def place_tiles(plan, hw: HardwareConfig | None = None, *, scheme: str = "pattern",
                filter_order: str = "given") -> Placement:
  """Places the OU tiles of a layer's plan into arrays (first-fit decreasing into strips).

  Args:
    plan: an `OuPlan` from `rramjax.plan.make_plan`, or a `(3, 3, Cin, Cout)` mask to plan with
      `scheme` and `filter_order`.
    hw: hardware config (array and OU geometry); paper defaults when None. It must be the one the
      plan was made with.
    scheme, filter_order: for a mask: 'pattern' or 'packed', 'given' or 'greedy'.

  Returns:
    The `Placement` (an empty one, with no arrays, when the layer keeps nothing).
  """
  hw = hw or HardwareConfig()
  if not isinstance(plan, OuPlan):
    plan = make_plan(check_conv_mask(plan), hw, scheme, filter_order)
  rows, cols = plan.rows_per_tile, plan.cols_per_tile
  strip, row = first_fit_decreasing(rows, hw.array_rows)
  strips_per_array = hw.array_cols // hw.ou_cols
  tiles = {"group": plan.tile_group, "block": plan.tile_group, "rows": rows, "cols": cols,
           "array": strip // strips_per_array, "strip": strip % strips_per_array, "row": row,
           "col": (strip % strips_per_array) * hw.ou_cols}
  return Placement(plan=plan, tiles=tiles, array_rows=hw.array_rows, array_cols=hw.array_cols,
                   ou_cols=hw.ou_cols, num_strips=int(strip.max()) + 1 if len(strip) else 0)
