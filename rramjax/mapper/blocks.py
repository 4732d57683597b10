"""Kernel patterns, pattern blocks and OU tiles of one 3x3 conv layer (DESIGN.md section 4).

A kernel `(c, f)` of an HWIO mask has a 9-bit pattern code, bit `i = 3*kh + kw` set when that
position is kept. Kernels of input channel `c` sharing pattern `p` read the same `k = popcount(p)`
input pixels, so they form one *pattern block* of `k` rows by `m * wc` columns (`m` filters, `wc`
columns per weight). A block is cut into OU *tiles* of at most `ou_rows x ou_cols`; with the paper's
9x8 OU every pattern fits one OU in height, so a tile is one OU activation per pixel and slice.

Column order inside a block: filter-major (the `wc` columns of one filter side by side), and inside a
filter cell `j` (LSB first) of the positive part, then, with differential encoding, cell `j` of the
negative part.

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (kernel reordering, pattern blocks).
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (pattern pruning).
"""

from __future__ import annotations

import numpy as np

from rramjax.hardware.config import HardwareConfig

from rramjax.plan import (POPCOUNT, POSITION_BITS, POSITIONS, Blocks,  # noqa: F401 (re-exported)
                          kernel_patterns, pattern_blocks, pattern_taps)


def _rank_in_group(counts: np.ndarray) -> np.ndarray:
  """For groups of the given sizes laid end to end: each element's index inside its group."""
  ends = np.cumsum(counts)
  return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - counts, counts)


def cut_tiles(blocks: Blocks, hw: HardwareConfig) -> dict[str, np.ndarray]:
  """Cuts every block into OU tiles of at most `ou_rows x ou_cols`.

  Args:
    blocks: the layer's pattern blocks.
    hw: hardware config (`ou_rows`, `ou_cols`, `columns_per_weight`).

  Returns:
    Parallel int64 arrays, one entry per tile: `block`, `tap_start` (first of the block's rows),
    `rows`, `col_start` (first of the block's columns) and `cols`. Tiles of a block are contiguous,
    row chunk major.
  """
  width = blocks.count * hw.columns_per_weight
  col_tiles = -(-width // hw.ou_cols)
  row_tiles = -(-blocks.size // hw.ou_rows)
  per_block = col_tiles * row_tiles
  block = np.repeat(np.arange(len(blocks)), per_block)
  rank = _rank_in_group(per_block)
  row_chunk, col_chunk = rank // col_tiles[block], rank % col_tiles[block]
  tap_start, col_start = row_chunk * hw.ou_rows, col_chunk * hw.ou_cols
  return {
      "block": block,
      "tap_start": tap_start,
      "rows": np.minimum(hw.ou_rows, blocks.size[block] - tap_start),
      "col_start": col_start,
      "cols": np.minimum(hw.ou_cols, width[block] - col_start),
  }
