"""Kernel patterns, pattern blocks and their OU tiles (docs/MODEL.md sections 4 and 5).

The definitions live in `rramjax.plan` (the one description of a mapped layer that the crossbar
model and the mapper share); this module re-exports them under the mapper's names.

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (kernel reordering, pattern blocks).
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (pattern pruning).
"""

from __future__ import annotations

import numpy as np

from rramjax.hardware.config import HardwareConfig
from rramjax.plan import (POPCOUNT, POSITION_BITS, POSITIONS, Blocks,  # noqa: F401 (re-exported)
                          blocks_of_codes, cut_groups, kernel_patterns, pattern_blocks, pattern_taps)


def cut_tiles(blocks: Blocks, hw: HardwareConfig) -> dict[str, np.ndarray]:
  """Cuts every block into OU tiles of at most `ou_rows x ou_cols` (as `make_plan` does).

  Args:
    blocks: the layer's pattern blocks.
    hw: hardware config (`ou_rows`, `ou_cols`, `columns_per_weight`).

  Returns:
    Parallel int64 arrays, one entry per tile: `block`, `tap_start` (first of the block's rows),
    `rows`, `col_start` (first of the block's columns) and `cols`. Tiles of a block are contiguous,
    row chunk major.
  """
  block, tap_start, rows, col_start, cols = cut_groups(blocks.size, blocks.count * hw.columns_per_weight, hw)
  return {"block": block, "tap_start": tap_start, "rows": rows, "col_start": col_start, "cols": cols}
