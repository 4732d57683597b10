"""Properties of the mapper: blocks, tiles, placement and costs (docs/MODEL.md section 4)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rramjax.errors import MaskError
from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import (first_fit_decreasing, map_layer, map_network, pattern_blocks,
                            place_tiles)

SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def hardware(draw):
  """Small arrays and OUs too, so that layers spill over many strips and arrays."""
  ou_rows = draw(st.sampled_from([1, 2, 3, 4, 9]))
  ou_cols = draw(st.sampled_from([1, 2, 4, 8]))
  array_rows = draw(st.sampled_from([9, 10, 16, 27, 512]))
  return HardwareConfig(
      array_rows=max(array_rows, ou_rows), array_cols=ou_cols * draw(st.integers(1, 8)),
      ou_rows=ou_rows, ou_cols=ou_cols, cell_bits=draw(st.sampled_from([1, 2, 4])),
      weight_bits=draw(st.sampled_from([4, 8])),
      sign_encoding=draw(st.sampled_from(["offset", "differential"])))


@st.composite
def masks(draw, max_cin=6, max_cout=12):
  cin, cout = draw(st.integers(1, max_cin)), draw(st.integers(1, max_cout))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  kernel_keep = rng.random((1, 1, cin, cout)) < draw(st.floats(0, 1))
  return (rng.random((3, 3, cin, cout)) < draw(st.floats(0.05, 1))) & kernel_keep


def naive_ffd(heights, capacity):
  """Item-by-item first-fit decreasing, the definition the vectorised one must match."""
  fill, strip, offset = [], np.zeros(len(heights), int), np.zeros(len(heights), int)
  for item in np.argsort(-np.asarray(heights), kind="stable"):
    target = next((i for i, used in enumerate(fill) if capacity - used >= heights[item]), None)
    if target is None:
      target = len(fill)
      fill.append(0)
    strip[item], offset[item] = target, fill[target]
    fill[target] += heights[item]
  return strip, offset


@SETTINGS
@given(st.lists(st.integers(1, 9), max_size=200), st.integers(9, 40))
def test_ffd_matches_item_by_item_definition(heights, capacity):
  strip, offset = first_fit_decreasing(np.array(heights, np.int64), capacity)
  expected_strip, expected_offset = naive_ffd(heights, capacity)
  np.testing.assert_array_equal(strip, expected_strip)
  np.testing.assert_array_equal(offset, expected_offset)


@SETTINGS
@given(masks(), hardware())
def test_every_kept_weight_placed_exactly_once(mask, hw):
  placement = place_tiles(mask, hw)
  placed = np.zeros(mask.reshape(9, *mask.shape[2:]).shape + (hw.columns_per_weight,), int)
  for tile in range(placement.num_tiles):
    taps = placement.tile_taps(tile)
    channel = placement.blocks.channel[placement.tiles["block"][tile]]
    filters, cells = placement.tile_columns(tile)
    np.add.at(placed, (taps[:, None], channel, filters[None, :], cells[None, :]), 1)
  expected = np.repeat(mask.reshape(9, *mask.shape[2:])[..., None], hw.columns_per_weight, axis=-1)
  np.testing.assert_array_equal(placed, expected)


@SETTINGS
@given(masks(), hardware())
def test_tiles_never_overlap_and_lie_inside_arrays(mask, hw):
  placement = place_tiles(mask, hw)
  t = placement.tiles
  assert np.all(t["rows"] <= hw.ou_rows) and np.all(t["cols"] <= hw.ou_cols)
  assert np.all(t["row"] >= 0) and np.all(t["row"] + t["rows"] <= hw.array_rows)
  assert np.all(t["col"] % hw.ou_cols == 0) and np.all(t["col"] + t["cols"] <= hw.array_cols)
  occupancy = np.zeros((placement.num_arrays, hw.array_rows, hw.array_cols), int)
  for tile in range(placement.num_tiles):
    occupancy[t["array"][tile], t["row"][tile]:t["row"][tile] + t["rows"][tile],
              t["col"][tile]:t["col"][tile] + t["cols"][tile]] += 1
  assert occupancy.max(initial=0) <= 1
  assert occupancy.sum() == np.sum(mask) * hw.columns_per_weight


@SETTINGS
@given(masks(), hardware())
def test_arrays_at_least_lower_bound_and_counts_consistent(mask, hw):
  pattern = map_layer(mask, hw)["pattern"]
  assert pattern["arrays"] >= pattern["arrays_lower_bound"]
  assert pattern["cells"] == np.sum(mask) * hw.columns_per_weight
  assert pattern["adc_per_pixel"] == _adc(mask, hw)
  assert pattern["ou_per_pixel"] == pattern["tiles"]
  records = list(pattern["placement"].records())
  assert len(records) == pattern["tiles"]


def test_arrays_lower_bound_is_cells_over_array_capacity_rounded_up():
  hw = HardwareConfig(array_rows=16, array_cols=16, ou_rows=9, ou_cols=8)  # 256 cells an array
  pattern = map_layer(np.ones((3, 3, 4, 4)), hw)["pattern"]  # 144 weights x 2 columns
  assert pattern["cells"] == 288 and pattern["arrays_lower_bound"] == 2


def _adc(mask, hw):
  """ADC conversions per pixel and slice: every kept kernel's columns, once per row chunk."""
  blocks = pattern_blocks(mask)
  return int(np.sum(blocks.count * hw.columns_per_weight * -(-blocks.size // hw.ou_rows)))


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 12), hardware())
def test_all_zero_layer_costs_nothing(cin, cout, hw):
  report = map_network([np.zeros((3, 3, cin, cout))], [5], hw)
  pattern = report["layers"][0]["pattern"]
  for key in ("arrays", "cells", "ou_activations", "adc_conversions", "dac_conversions", "energy_pj",
              "latency_cycles", "latency_equal_area_cycles", "tiles", "blocks"):
    assert pattern[key] == 0, key
  assert report["totals"]["ratios"]["area_efficiency"] is None
  assert report["layers"][0]["baseline"]["arrays"] >= 1  # the baseline stores the zeros


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3, 9]), st.sampled_from([1, 2, 4, 8]),
       st.integers(1, 6), st.sampled_from([1, 2, 8, 64]), st.sampled_from(["offset", "differential"]))
def test_dense_layer_matches_baseline_when_rows_line_up(cin, cout, ou_rows, ou_cols, row_blocks, strips,
                                                        encoding):
  """'Lining up': the OU height divides 9 and every array starts on a kernel boundary (R a multiple
  of 9), so the baseline's OU row groups are exactly the kernels' rows, one channel each; then both
  mappings activate the same OUs and convert the same samples."""
  hw = HardwareConfig(array_rows=9 * row_blocks, array_cols=ou_cols * strips, ou_rows=ou_rows,
                      ou_cols=ou_cols, sign_encoding=encoding)
  mapped = map_layer(np.ones((3, 3, cin, cout)), hw)
  for key in ("ou_per_pixel", "adc_per_pixel", "dac_per_pixel", "cells"):
    assert mapped["pattern"][key] == mapped["baseline"][key], key


@SETTINGS
@given(st.integers(1, 80), st.integers(1, 80), st.sampled_from([16, 100, 512]))
def test_dense_layer_never_needs_more_ous_than_baseline(cin, cout, array_rows):
  """With 9-row OUs a dense kernel is one OU row group; the baseline's groups can straddle channels."""
  hw = HardwareConfig(array_rows=array_rows, array_cols=64)
  mapped = map_layer(np.ones((3, 3, cin, cout)), hw)
  assert mapped["pattern"]["ou_per_pixel"] <= mapped["baseline"]["ou_per_pixel"]


def test_map_layer_schema():
  mapped = map_layer(np.ones((3, 3, 2, 2)))
  assert set(mapped) == {"baseline", "pattern"}
  for part in mapped.values():
    assert {"arrays", "ou_per_pixel", "adc_per_pixel", "dac_per_pixel"} <= set(part)
  assert {"blocks", "tiles", "cells", "arrays_lower_bound", "placement"} <= set(mapped["pattern"])


def tiny_network():
  """conv_00: Cin=2, Cout=3; channel 0: filters 0, 1 keep pattern A (4 taps), filter 2 the centre;
  channel 1: filter 0 pattern A, filters 1, 2 pruned. conv_01: all zero. fc: 10 -> 4."""
  pattern_a = [0, 1, 4, 8]
  mask = np.zeros((9, 2, 3))
  mask[pattern_a, 0, 0] = mask[pattern_a, 0, 1] = mask[pattern_a, 1, 0] = 1
  mask[4, 0, 2] = 1
  return [mask.reshape(3, 3, 2, 3), np.zeros((3, 3, 3, 2))], {"fc": (np.ones((10, 4)), 1)}


def test_map_network_totals_by_hand():
  masks, extra = tiny_network()
  report = map_network(masks, [4, (2, 3)], extra_layers=extra)
  ps = 16 * 2  # P = 4 x 4 output pixels, S = 2 slices
  cycle = 1 / 18e6
  layer = report["layers"][0]
  # Blocks: (c0, A, 2 filters) 4 rows x 4 cols, (c0, centre, 1) 1 x 2, (c1, A, 1) 4 x 2: one tile each.
  pattern = layer["pattern"]
  assert (pattern["blocks"], pattern["tiles"], pattern["arrays"], pattern["cells"]) == (3, 3, 1, 26)
  assert (pattern["ou_per_pixel"], pattern["adc_per_pixel"], pattern["dac_per_pixel"]) == (3, 8, 9)
  # Baseline: 18 rows x 6 columns in one array: 2 x 1 OUs, 2 x 6 ADC, 18 x 1 DAC.
  base = layer["baseline"]
  assert (base["arrays"], base["ou_per_pixel"], base["adc_per_pixel"], base["dac_per_pixel"]) == (1, 2, 12, 18)
  assert pattern["energy_pj"] == pytest.approx(ps * (3 * 4.8 + 8 * 1.67 + 9 * 0.0182))
  assert base["energy_pj"] == pytest.approx(ps * (2 * 4.8 + 12 * 1.67 + 18 * 0.0182))
  assert pattern["latency_s"] == pytest.approx(3 * ps * cycle)
  # conv_01 is all zero: baseline 27 rows x 4 cols, 1 array, 3 OUs per pixel-slice over 6 pixels.
  totals = report["totals"]
  assert totals["baseline"]["arrays"] == 2 and totals["pattern"]["arrays"] == 1
  assert totals["baseline"]["ou_activations"] == 2 * ps + 3 * 6 * 2
  assert totals["pattern"]["ou_activations"] == 3 * ps
  assert totals["ratios"]["area_efficiency"] == 2.0
  base_energy = ps * (2 * 4.8 + 12 * 1.67 + 18 * 0.0182) + 12 * (3 * 4.8 + 3 * 4 * 1.67 + 27 * 0.0182)
  assert totals["baseline"]["energy_pj"] == pytest.approx(base_energy)
  assert totals["ratios"]["energy_efficiency"] == pytest.approx(base_energy / pattern["energy_pj"])
  assert totals["ratios"]["speedup"] == pytest.approx((2 * ps + 3 * 12) / (3 * ps))
  # FC 10 -> 4: 10 rows x 8 columns, 2 x 1 OUs, 2 x 8 ADC, 10 DAC, P = 1.
  fc = report["extra_layers"][0]["baseline"]
  assert (fc["arrays"], fc["ou_activations"], fc["adc_conversions"], fc["dac_conversions"]) == (1, 4, 32, 20)
  assert report["network_totals"]["pattern"]["arrays"] == 2
  assert report["network_totals"]["baseline"]["arrays"] == 3


def test_equal_area_replicates_layers():
  hw = HardwareConfig(array_rows=18, array_cols=16)
  mask = np.zeros((3, 3, 8, 4))
  mask[1, 1] = 1  # centre-only kernels: 8 blocks of 1 row
  report = map_network([mask], [10], hw)
  base, pattern = report["layers"][0]["baseline"], report["layers"][0]["pattern"]
  assert base["arrays"] == 4 and pattern["arrays"] == 1 and pattern["replicas_equal_area"] == 4
  assert pattern["latency_equal_area_cycles"] == pattern["max_ou_per_array"] * 25 * 2


@pytest.mark.parametrize("bad, message", [
    (np.ones((3, 3, 4)), "rank"),
    (np.ones((5, 5, 2, 2)), "3x3"),
    (np.full((3, 3, 2, 2), np.nan), "NaN"),
    (np.ones((3, 3, 0, 2)), "empty"),
    (np.array([["a"]]), "dtype"),
])
def test_bad_masks_raise_mask_error(bad, message):
  with pytest.raises(MaskError, match=message):
    map_layer(bad)


def test_bad_out_hw_and_extra_raise_mask_error():
  with pytest.raises(MaskError):
    map_network([np.ones((3, 3, 1, 1))], [4, 4])
  with pytest.raises(MaskError):
    map_network([np.ones((3, 3, 1, 1))], [4], extra_layers=[(np.ones(3), 1)])
  with pytest.raises(MaskError):
    map_network([], [])
