"""The OU plan of a 3x3 conv layer: which crossbar rows and columns every OU holds (numpy only).

The plan is the one description of a mapped layer that both sides read: the `ou` crossbar model
(`rramjax.hardware`) digitises exactly the partial sums of the plan's OUs, and the mapper
(`rramjax.mapper`) places and counts the same tiles. It imports neither of them (docs/MODEL.md
section 5; the planned `ou` path that computes the tiles: section 7).

Geometry. A layer's weights `W[kh, kw, c, f]` (HWIO) sit on crossbar *rows* `r = 9*c + t`, one per
input channel `c` and tap `t = 3*kh + kw` (channel-major, like the straightforward im2col mapping),
and *columns* `q = f*wc + j`, one per filter `f` and weight column `j < wc`
(`wc = hw.columns_per_weight`: the `cells_per_weight` cells, LSB first, then with differential
encoding the negative part's). A position outside the mask is no stored cell: it adds nothing to
any partial sum. An OU *tile* is a set of at most `ou_rows` rows and `ou_cols` columns activated
together; per output pixel and input slice it gives one partial sum per column, each digitised by
the ADC.

Schemes:
  * `pattern` (the paper's kernel reordering): the kernels of input channel `c` with pattern `p`
    form the *pattern block* `(c, p)`: `popcount(p)` rows (the taps of `p`, ascending) by
    `m * wc` columns (its `m` filters, ascending, filter-major). Each block is cut into tiles,
    row chunks of `ou_rows` major, column chunks of `ou_cols` minor.
  * `packed` (beyond the paper): filters, in the plan's filter order, form *column groups* of
    `g = max(1, floor(ou_cols / wc))`. A row is *needed* by a group when one of its filters keeps
    that `(c, t)`; the group's needed rows, ascending, are cut into chunks of `ou_rows`, and each
    chunk is a tile over the group's `g * wc` columns (cut into `ou_cols` chunks if `wc > ou_cols`).
    An OU sum then spans rows of several input channels.

Filter order for `packed` [choice]: `given` (filter index order) or `greedy`: groups are filled
one at a time, each from the first unplaced filter, adding the filter whose kept rows grow the
group's needed rows least (ties: the lowest index).

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (pattern blocks, OU tiles).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rramjax.errors import ConfigError, MaskError
from rramjax.hardware.config import KERNEL_POSITIONS as POSITIONS
from rramjax.hardware.config import HardwareConfig

POSITION_BITS = 1 << np.arange(POSITIONS)
MAX_CODE = (1 << POSITIONS) - 1  # 511: codes 1..MAX_CODE are the nonempty 3x3 patterns
POPCOUNT = np.array([bin(code).count("1") for code in range(1 << POSITIONS)], dtype=np.int64)
SCHEMES = ("pattern", "packed")
FILTER_ORDERS = ("given", "greedy")


# Pattern codes ---------------------------------------------------------------------------------
def codes_to_masks(codes) -> np.ndarray:
  """9-bit pattern codes `(...)` to boolean position masks `(..., 9)`, bit `i = 3*kh + kw`."""
  return ((np.asarray(codes, np.int64)[..., None] >> np.arange(POSITIONS)) & 1).astype(bool)


def masks_to_codes(rows) -> np.ndarray:
  """Position masks `(..., 9)` (nonzero = kept) to int64 pattern codes `(...)`."""
  return (np.asarray(rows) != 0).astype(np.int64) @ POSITION_BITS


def kernel_patterns(mask) -> np.ndarray:
  """The 9-bit pattern code of every kernel of a `(3, 3, Cin, Cout)` mask: `(Cin, Cout)` int64, 0 = removed."""
  kept = (np.asarray(mask) != 0).reshape(POSITIONS, -1)
  codes = np.zeros(kept.shape[1], np.int64)
  for position in range(POSITIONS):  # nine vector ops beat a matmul over an int64 copy of the mask
    codes |= kept[position].astype(np.int64) << position
  return codes.reshape(np.shape(mask)[2:])


def pattern_taps(code: int) -> np.ndarray:
  """Kernel positions (`3*kh + kw`, ascending) kept by a pattern: a block's rows in order."""
  return np.flatnonzero((int(code) >> np.arange(POSITIONS)) & 1)


def check_mask(mask, name: str = "mask") -> np.ndarray:
  """A `(3, 3, Cin, Cout)` mask as a boolean array; MaskError otherwise."""
  array = np.asarray(mask)
  if array.ndim != 4 or array.shape[:2] != (3, 3) or 0 in array.shape:
    raise MaskError(f"{name}: expected a 3x3 conv mask of shape (3, 3, Cin, Cout) (HWIO), got "
                    f"shape {array.shape}.")
  return array != 0


# Pattern blocks --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Blocks:
  """The pattern blocks of one layer, as parallel arrays (one entry per block).

  Attributes:
    channel: input channel `c` of each block.
    pattern: 9-bit pattern code `p`.
    size: `k = popcount(p)`, the block's rows.
    count: `m`, the filters in the block.
    start: offset of the block's filters in `filters`.
    filters: filter indices of all blocks, each block's ascending and contiguous.
  """
  channel: np.ndarray
  pattern: np.ndarray
  size: np.ndarray
  count: np.ndarray
  start: np.ndarray
  filters: np.ndarray

  def __len__(self) -> int:
    return len(self.channel)

  def block_filters(self, block: int) -> np.ndarray:
    return self.filters[self.start[block]:self.start[block] + self.count[block]]


def pattern_blocks(mask) -> Blocks:
  """Groups the nonzero kernels of a `(3, 3, Cin, Cout)` mask into pattern blocks.

  Blocks come ordered by channel, then pattern code; all-zero kernels belong to no block.
  """
  return blocks_of_codes(kernel_patterns(mask))


def blocks_of_codes(codes) -> Blocks:
  """The pattern blocks of a layer given its `(Cin, Cout)` kernel pattern codes (0 = removed)."""
  codes = np.asarray(codes, np.int64)
  cout = codes.shape[1]
  flat = codes.ravel()
  kept = np.flatnonzero(flat)
  keys = (kept // cout) * (1 << POSITIONS) + flat[kept]
  # A stable sort keeps each block's filters ascending (the flat index grows with the filter).
  order = np.argsort(keys, kind="stable")
  keys, filters = keys[order], kept[order] % cout
  unique, start, count = np.unique(keys, return_index=True, return_counts=True)
  pattern = unique % (1 << POSITIONS)
  return Blocks(channel=unique >> POSITIONS, pattern=pattern, size=POPCOUNT[pattern], count=count,
                start=start, filters=filters)


# Filter order ----------------------------------------------------------------------------------
def filter_order(mask, hw: HardwareConfig, order: str = "given") -> np.ndarray:
  """The filter order of the packed mapping's column groups (see the module doc).

  Args:
    mask: `(3, 3, Cin, Cout)` mask.
    hw: hardware config (`ou_cols`, `columns_per_weight` set the group size).
    order: 'given' or 'greedy'.

  Returns:
    A permutation of `range(Cout)`.
  """
  if order not in FILTER_ORDERS:
    raise ConfigError(f"filter_order must be one of {FILTER_ORDERS}, got {order!r}.")
  mask = check_mask(mask)
  cout = mask.shape[3]
  if order == "given":
    return np.arange(cout)
  rows = np.ascontiguousarray(mask.reshape(-1, cout).T)     # (Cout, 9*Cin): kept rows per filter
  by_row = np.ascontiguousarray(rows.T, np.float32)         # (9*Cin, Cout): fast row gathers
  size, left, out = by_row.sum(axis=0), np.ones(cout, bool), []
  group = column_group_size(hw)
  for first in range(cout):
    if not left[first]:
      continue
    left[first] = False
    # overlap[i] = rows filter i shares with the group (exact counts in float32).
    members, needed, overlap = [first], rows[first].copy(), by_row[rows[first]].sum(axis=0)
    while len(members) < group and left.any():
      growth = np.where(left, size - overlap, np.inf)      # new rows each candidate would add
      best = int(np.argmin(growth))
      left[best] = False
      members.append(best)
      added = rows[best] & ~needed
      needed |= added
      overlap += by_row[added].sum(axis=0)                  # keeps overlap = rows @ needed
    out += members
  return np.asarray(out, np.int64)


def column_group_size(hw: HardwareConfig) -> int:
  """Filters per column group of the packed mapping: `g = max(1, floor(ou_cols / wc))` (4 by default)."""
  return max(1, hw.ou_cols // hw.columns_per_weight)


# The column group at the paper's hardware (4 filters): the default group of OU-aware pruning.
DEFAULT_GROUP_SIZE = column_group_size(HardwareConfig())


# The plan --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class OuPlan:
  """The OU tiles of one mapped 3x3 conv layer (see the module doc for rows and columns).

  Attributes:
    scheme: 'pattern' or 'packed'.
    cin, cout: the layer's channels.
    columns_per_weight: `wc`.
    tile_rows: `(T, R)` int64 crossbar rows `9*c + t` of each tile, top to bottom, -1 padded
      (`R` = the most rows of any tile, at most `ou_rows`).
    tile_cols: `(T, C)` int64 crossbar columns `f*wc + j` of each tile, left to right, -1 padded
      (`C` = the most columns of any tile, at most `ou_cols`).
    tile_group: `(T,)` the pattern block (pattern scheme) or column group (packed) of each tile.
    order: the filter order (packed; `arange(cout)` for the pattern scheme).
    codes: `(Cin, Cout)` pattern code of every kernel of the mask the plan was made for.
  """
  scheme: str
  cin: int
  cout: int
  columns_per_weight: int
  tile_rows: np.ndarray
  tile_cols: np.ndarray
  tile_group: np.ndarray
  order: np.ndarray
  codes: np.ndarray

  @property
  def num_tiles(self) -> int:
    return len(self.tile_rows)

  @property
  def rows_per_tile(self) -> np.ndarray:
    return np.sum(self.tile_rows >= 0, axis=1)

  @property
  def cols_per_tile(self) -> np.ndarray:
    return np.sum(self.tile_cols >= 0, axis=1)

  def tile_channel_tap(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """`(channel, tap)` of each of a tile's rows."""
    rows = self.tile_rows[tile][self.tile_rows[tile] >= 0]
    return rows // POSITIONS, rows % POSITIONS

  def tile_filter_cell(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """`(filter, column j)` of each of a tile's columns."""
    cols = self.tile_cols[tile][self.tile_cols[tile] >= 0]
    return cols // self.columns_per_weight, cols % self.columns_per_weight


TAPS = np.array([np.pad(np.flatnonzero((code >> np.arange(POSITIONS)) & 1), (0, POSITIONS),
                        constant_values=-1)[:POSITIONS] for code in range(1 << POSITIONS)], np.int64)


def _rank_in_group(counts: np.ndarray) -> np.ndarray:
  """For groups of the given sizes laid end to end: each element's index inside its group."""
  ends = np.cumsum(counts)
  return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - counts, counts)


def cut_groups(num_rows: np.ndarray, num_cols: np.ndarray, hw: HardwareConfig):
  """Tiles of groups of `num_rows x num_cols`: (group, first row, rows, first col, cols) per tile.

  A group's tiles are contiguous, row chunk major.
  """
  col_tiles = -(-num_cols // hw.ou_cols)
  per_group = (-(-num_rows // hw.ou_rows)) * col_tiles
  group = np.repeat(np.arange(len(num_rows)), per_group)
  rank = _rank_in_group(per_group)
  row0 = rank // np.maximum(col_tiles[group], 1) * hw.ou_rows
  col0 = rank % np.maximum(col_tiles[group], 1) * hw.ou_cols
  return (group, row0, np.minimum(hw.ou_rows, num_rows[group] - row0), col0,
          np.minimum(hw.ou_cols, num_cols[group] - col0))


def _grid(first: np.ndarray, count: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
  """`(index, valid)`: `first[:, None] + arange(width)` and where it is inside `count`."""
  offset = np.arange(max(width, 1))
  return first[:, None] + offset, offset < count[:, None]


def _pattern_tiles(codes, hw):
  blocks, wc = blocks_of_codes(codes), hw.columns_per_weight
  group, row0, rows, col0, cols = cut_groups(blocks.size, blocks.count * wc, hw)
  r_index, r_valid = _grid(row0, rows, rows.max(initial=0))
  taps = TAPS[blocks.pattern[group][:, None], np.minimum(r_index, POSITIONS - 1)]
  tile_rows = np.where(r_valid, POSITIONS * blocks.channel[group][:, None] + taps, -1)
  c_index, c_valid = _grid(col0, cols, cols.max(initial=0))
  slot = blocks.start[group][:, None] + c_index // wc
  filters = blocks.filters[np.minimum(slot, len(blocks.filters) - 1)] if len(blocks.filters) else slot
  tile_cols = np.where(c_valid, filters * wc + c_index % wc, -1)
  return tile_rows, tile_cols, group


def _packed_tiles(mask, hw, order):
  wc, cout, size = hw.columns_per_weight, mask.shape[3], column_group_size(hw)
  # (9*Cin, Cout) with row 9*c + t (HWIO reshapes t-major, so swap to channel-major).
  kept = mask.reshape(POSITIONS, -1, cout).transpose(1, 0, 2).reshape(-1, cout)
  groups = -(-cout // size)
  members = np.full(groups * size, -1, np.int64)
  members[:cout] = order
  members = members.reshape(groups, size)
  # Padding members (-1) read an all-False column appended to `kept`.
  padded = np.concatenate([kept, np.zeros((len(kept), 1), bool)], axis=1)
  needed = padded[:, members].any(axis=2).T                               # (G, 9*Cin)
  group_of, row_of = np.nonzero(needed)                                   # group-major, rows ascending
  counts = np.bincount(group_of, minlength=groups)
  group, row0, rows, col0, cols = cut_groups(counts, np.sum(members >= 0, axis=1) * wc, hw)
  r_index, r_valid = _grid(row0, rows, rows.max(initial=0))
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  flat = np.minimum(starts[group][:, None] + r_index, max(len(row_of) - 1, 0))
  tile_rows = np.where(r_valid, row_of[flat] if len(row_of) else -1, -1)
  c_index, c_valid = _grid(col0, cols, cols.max(initial=0))
  filters = members[group[:, None], np.minimum(c_index // wc, size - 1)]
  tile_cols = np.where(c_valid, filters * wc + c_index % wc, -1)
  return tile_rows, tile_cols, group


def make_plan(mask, hw: HardwareConfig | None = None, scheme: str = "pattern",
              order: str = "given") -> OuPlan:
  """The OU tiles of one layer mapped by `scheme` (see the module doc).

  Args:
    mask: `(3, 3, Cin, Cout)` mask, nonzero = kept (a concrete array, not a traced one).
    hw: hardware config (OU shape, columns per weight); the paper's defaults when None.
    scheme: 'pattern' or 'packed'.
    order: the packed mapping's filter order, 'given' or 'greedy' (ignored by 'pattern').

  Returns:
    The `OuPlan`.

  Example:
    >>> import numpy as np
    >>> mask = np.zeros((3, 3, 2, 4), bool)
    >>> mask[1, :, 0, :] = True          # channel 0: the middle row, for all 4 filters
    >>> mask[:, 1, 1, 0] = True          # channel 1: the middle column, filter 0 only
    >>> make_plan(mask).num_tiles, make_plan(mask, scheme="packed").num_tiles
    (2, 1)
  """
  hw = hw or HardwareConfig()
  if scheme not in SCHEMES:
    raise ConfigError(f"scheme must be one of {SCHEMES}, got {scheme!r}.")
  mask = check_mask(mask)
  codes = kernel_patterns(mask)
  if scheme == "pattern":
    perm = np.arange(mask.shape[3])
    tile_rows, tile_cols, group = _pattern_tiles(codes, hw)
  else:
    perm = filter_order(mask, hw, order)
    tile_rows, tile_cols, group = _packed_tiles(mask, hw, perm)
  return OuPlan(scheme=scheme, cin=mask.shape[2], cout=mask.shape[3],
                columns_per_weight=hw.columns_per_weight, tile_rows=tile_rows.astype(np.int64),
                tile_cols=tile_cols.astype(np.int64), tile_group=group.astype(np.int64),
                order=perm, codes=codes)
