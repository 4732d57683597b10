"""The OU plan (rramjax.plan): every kept weight in exactly one tile, tile shapes within the OU,
pattern tiles holding one pattern block, packed tiles one column group, and the filter orders."""

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rramjax.errors import ConfigError, MaskError
from rramjax.hardware.config import HardwareConfig
from rramjax.plan import (codes_to_masks, filter_order, kernel_patterns, make_plan, masks_to_codes,
                          pattern_blocks)

HARDWARE = [HardwareConfig(), HardwareConfig(ou_rows=4, ou_cols=4),
            HardwareConfig(sign_encoding="differential"), HardwareConfig(ou_rows=2, ou_cols=2),
            HardwareConfig(ou_rows=16, ou_cols=8, cell_bits=2)]
masks = hnp.arrays(bool, st.tuples(st.just(3), st.just(3), st.integers(1, 5), st.integers(1, 9)))


def coverage(plan, cin, cout):
  """How many tiles hold each (crossbar row, column) cell."""
  count = np.zeros((9 * cin, cout * plan.columns_per_weight), np.int64)
  for t in range(plan.num_tiles):
    rows, cols = plan.tile_rows[t], plan.tile_cols[t]
    count[np.ix_(rows[rows >= 0], cols[cols >= 0])] += 1
  return count


def kept_cells(mask, wc):
  cin, cout = mask.shape[2:]
  kept = mask.reshape(9, cin, cout).transpose(1, 0, 2).reshape(9 * cin, cout)
  return np.repeat(kept, wc, axis=1)


@settings(max_examples=40, deadline=None)
@given(mask=masks, hw_index=st.integers(0, len(HARDWARE) - 1),
       scheme=st.sampled_from(["pattern", "packed"]), order=st.sampled_from(["given", "greedy"]))
def test_every_kept_weight_in_exactly_one_tile(mask, hw_index, scheme, order):
  hw = HARDWARE[hw_index]
  plan = make_plan(mask, hw, scheme, order)
  assert np.all(plan.rows_per_tile <= hw.ou_rows) and np.all(plan.cols_per_tile <= hw.ou_cols)
  assert np.all(plan.rows_per_tile >= 1) and np.all(plan.cols_per_tile >= 1)
  count = coverage(plan, *mask.shape[2:])
  kept = kept_cells(mask, hw.columns_per_weight)
  assert np.all(count[kept] == 1)
  if scheme == "pattern":  # pattern tiles store no cell outside a kernel's pattern
    assert np.all(count[~kept] == 0)
  assert sorted(plan.order.tolist()) == list(range(mask.shape[3]))


@settings(max_examples=30, deadline=None)
@given(mask=masks)
def test_pattern_tiles_are_blocks_and_packed_tiles_are_groups(mask):
  hw = HardwareConfig()
  plan = make_plan(mask, hw, "pattern")
  blocks = pattern_blocks(mask)
  codes = kernel_patterns(mask)
  for t in range(plan.num_tiles):
    channels, taps = plan.tile_channel_tap(t)
    filters, _ = plan.tile_filter_cell(t)
    b = plan.tile_group[t]
    assert np.all(channels == blocks.channel[b])
    assert np.all(codes[channels[0], filters] == blocks.pattern[b])
    assert set(taps) <= set(np.flatnonzero(codes_to_masks(blocks.pattern[b])))
  packed = make_plan(mask, hw, "packed")
  for t in range(packed.num_tiles):
    filters, _ = packed.tile_filter_cell(t)
    assert len(set(filters)) <= hw.ou_cols // hw.columns_per_weight
    # A packed row is needed: at least one filter of the group keeps it.
    channels, taps = packed.tile_channel_tap(t)
    assert np.all(mask[taps // 3, taps % 3, channels][:, filters].any(axis=1))


def test_hand_counted_tiles():
  mask = np.zeros((3, 3, 2, 4), bool)
  mask[1, :, 0, :] = True   # channel 0: middle row (3 taps) in all 4 filters: one block, 8 columns
  mask[:, 1, 1, 0] = True   # channel 1: middle column, filter 0: one block, 2 columns
  plan = make_plan(mask)
  assert plan.num_tiles == 2
  assert sorted(plan.rows_per_tile.tolist()) == [3, 3] and sorted(plan.cols_per_tile.tolist()) == [2, 8]
  packed = make_plan(mask, scheme="packed")
  assert packed.num_tiles == 1 and packed.rows_per_tile.tolist() == [6]
  small = make_plan(mask, HardwareConfig(ou_rows=4, ou_cols=4), "packed")
  # Groups of 2 filters: {0, 1} needs 6 rows (two OUs), {2, 3} needs 3.
  assert small.rows_per_tile.tolist() == [4, 2, 3] and small.cols_per_tile.tolist() == [4, 4, 4]


def test_greedy_order_groups_filters_with_the_same_rows():
  # Filters 0, 2, 4, 6 keep channel 0's centre; 1, 3, 5, 7 keep channel 1's: 'given' mixes them
  # (every group needs both rows), 'greedy' puts like with like (every group needs one row).
  mask = np.zeros((3, 3, 2, 8), bool)
  mask[1, 1, 0, 0::2] = True
  mask[1, 1, 1, 1::2] = True
  hw = HardwareConfig()
  order = filter_order(mask, hw, "greedy")
  assert sorted(order[:4].tolist()) in ([0, 2, 4, 6], [1, 3, 5, 7])
  assert make_plan(mask, hw, "packed", "given").rows_per_tile.tolist() == [2, 2]
  assert make_plan(mask, hw, "packed", "greedy").rows_per_tile.tolist() == [1, 1]


def test_codes_round_trip():
  codes = np.arange(512)
  np.testing.assert_array_equal(masks_to_codes(codes_to_masks(codes)), codes)


def test_bad_arguments():
  with pytest.raises(MaskError, match="3x3"):
    make_plan(np.ones((1, 1, 2, 2)))
  with pytest.raises(ConfigError, match="scheme"):
    make_plan(np.ones((3, 3, 2, 2)), scheme="dense")
  with pytest.raises(ConfigError, match="filter_order"):
    make_plan(np.ones((3, 3, 2, 2)), scheme="packed", order="random")
