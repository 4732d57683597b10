"""Properties of the mapper: plans placed into arrays, costs of every scheme, latency policies
(docs/MODEL.md section 4, docs/MAPPER.md)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rramjax.errors import ConfigError, MaskError
from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import (CostModel, MapperConfig, balanced_copies, energy_per_pixel,
                            first_fit_decreasing, map_layer, map_network, map_run, pattern_blocks,
                            place_tiles, sum_bits)
from rramjax.plan import make_plan

SCHEMES = st.sampled_from(["pattern", "packed"])

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
@given(masks(), hardware(), SCHEMES, st.sampled_from(["given", "greedy"]))
def test_every_kept_weight_placed_exactly_once(mask, hw, scheme, order):
  placement = place_tiles(mask, hw, scheme=scheme, filter_order=order)
  placed = np.zeros(mask.reshape(9, *mask.shape[2:]).shape + (hw.columns_per_weight,), int)
  for tile in range(placement.num_tiles):
    channels, taps = placement.tile_channel_tap(tile)
    filters, cells = placement.tile_columns(tile)
    np.add.at(placed, (taps[:, None], channels[:, None], filters[None, :], cells[None, :]), 1)
  expected = np.repeat(mask.reshape(9, *mask.shape[2:])[..., None], hw.columns_per_weight, axis=-1)
  # Packed tiles also hold the cells of rows a filter of their group does not keep (unused cells).
  np.testing.assert_array_equal(placed[expected == 1], 1)
  if scheme == "pattern":
    np.testing.assert_array_equal(placed, expected)


@SETTINGS
@given(masks(), hardware(), SCHEMES)
def test_tiles_never_overlap_and_lie_inside_arrays(mask, hw, scheme):
  placement = place_tiles(make_plan(mask, hw, scheme), hw)
  t = placement.tiles
  assert np.all(t["rows"] <= hw.ou_rows) and np.all(t["cols"] <= hw.ou_cols)
  assert np.all(t["row"] >= 0) and np.all(t["row"] + t["rows"] <= hw.array_rows)
  assert np.all(t["col"] % hw.ou_cols == 0) and np.all(t["col"] + t["cols"] <= hw.array_cols)
  occupancy = np.zeros((placement.num_arrays, hw.array_rows, hw.array_cols), int)
  for tile in range(placement.num_tiles):
    occupancy[t["array"][tile], t["row"][tile]:t["row"][tile] + t["rows"][tile],
              t["col"][tile]:t["col"][tile] + t["cols"][tile]] += 1
  assert occupancy.max(initial=0) <= 1
  assert occupancy.sum() == np.sum(t["rows"] * t["cols"])
  if scheme == "pattern":
    assert occupancy.sum() == np.sum(mask) * hw.columns_per_weight


@SETTINGS
@given(masks(), hardware())
def test_arrays_at_least_lower_bound_and_counts_consistent(mask, hw):
  mapped = map_layer(mask, hw, schemes=("pattern", "packed"))
  pattern, packed = mapped["pattern"], mapped["packed"]
  for entry in (pattern, packed):
    assert entry["arrays"] >= entry["arrays_lower_bound"] == -(-entry["cells"] // (hw.array_rows * hw.array_cols))
    assert entry["ou_per_pixel"] == entry["tiles"] == len(list(entry["placement"].records()))
  assert pattern["cells"] == np.sum(mask) * hw.columns_per_weight
  assert pattern["adc_per_pixel"] == _adc(mask, hw)


def packed_formula(mask, hw):
  """The packed mapping's counts per pixel and slice, written from its definition: filters in
  groups of g = ou_cols // wc (given order); a group with n needed rows and f filters costs
  ceil(n / ou_rows) OUs, ceil(n / ou_rows) * f * wc ADC and n DAC conversions."""
  wc, cin, cout = hw.columns_per_weight, mask.shape[2], mask.shape[3]
  g = hw.ou_cols // wc
  ou = adc = dac = 0
  for first in range(0, cout, g):
    group = range(first, min(first + g, cout))
    n = sum(1 for c in range(cin) for kh in range(3) for kw in range(3)
            if any(mask[kh, kw, c, f] for f in group))
    ou += -(-n // hw.ou_rows)
    adc += -(-n // hw.ou_rows) * len(group) * wc
    dac += n
  return ou, adc, dac


@SETTINGS
@given(masks(), hardware())
def test_packed_counts_equal_their_definition(mask, hw):
  if hw.columns_per_weight > hw.ou_cols:  # the definition's groups need wc <= ou_cols
    hw = hw.replace(cell_bits=8, sign_encoding="offset")
  packed = map_layer(mask, hw, schemes=("packed",))["packed"]
  assert (packed["ou_per_pixel"], packed["adc_per_pixel"], packed["dac_per_pixel"]) == packed_formula(mask, hw)


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


@st.composite
def networks(draw):
  """2-4 random layers chained by channels, with output sides, on the paper's hardware or a small one."""
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  channels = [int(c) for c in rng.integers(1, 40, draw(st.integers(3, 5)))]
  density = draw(st.floats(0.05, 1))
  layers = [(rng.random((3, 3, a, b)) < density) & (rng.random((1, 1, a, b)) < draw(st.floats(0.1, 1)))
            for a, b in zip(channels[:-1], channels[1:])]
  sides = [int(s) for s in rng.integers(1, 12, len(layers))]
  hw = draw(st.sampled_from([HardwareConfig(), HardwareConfig(array_rows=32, array_cols=32),
                             HardwareConfig(array_rows=64, array_cols=16, ou_rows=4, ou_cols=4)]))
  return layers, sides, hw


@settings(max_examples=25, deadline=None)
@given(networks(), st.sampled_from(["energy", "area", "latency"]), st.sampled_from(["given", "greedy"]))
def test_best_is_no_worse_than_any_scheme_on_its_objective(network, objective, order):
  layers, _, hw = network
  key = {"energy": "energy_per_pixel_pj", "area": "arrays", "latency": "max_ou_per_array"}[objective]
  for mask in layers:
    mapped = map_layer(mask, hw, schemes=("pattern", "packed", "best"), filter_order=order, objective=objective)
    best = mapped["best"]
    assert best["chosen"] in ("pattern", "packed", "baseline")
    assert best[key] == mapped[best["chosen"]][key]
    assert all(best[key] <= mapped[s][key] for s in ("baseline", "pattern", "packed"))


@settings(max_examples=25, deadline=None)
@given(networks())
def test_latency_policies_order(network):
  layers, sides, hw = network
  report = map_network(layers, sides, hw, schemes=("pattern", "packed", "best"))
  budget = sum(max(layer["baseline"]["arrays"], layer["packed"]["arrays"]) for layer in report["layers"])
  for part in ("baseline", "pattern", "packed", "best"):
    total = report["totals"][part]
    assert total["latency_balanced_cycles"] <= total["latency_equal_area_cycles"] <= total["latency_cycles"]
    assert total["latency_pipelined_cycles"] <= total["latency_cycles"]
    assert total["latency_pipelined_cycles"] == max(layer[part]["latency_cycles"] for layer in report["layers"])
    copies = [layer[part]["replicas_balanced"] for layer in report["layers"]]
    assert all(k >= 1 for k, layer in zip(copies, report["layers"]) if layer[part]["arrays"])
  used = sum(layer["packed"]["replicas_balanced"] * layer["packed"]["arrays"] for layer in report["layers"])
  assert used <= budget
  base = report["totals"]["baseline"]  # the baseline at its own area: one copy each
  assert base["latency_balanced_cycles"] == base["latency_equal_area_cycles"] == base["latency_cycles"]


def test_balanced_gives_freed_arrays_to_the_slow_layers():
  # Layer 0 fits one array of its baseline's one; layer 1 shrinks from 8 arrays to 1: equal_area
  # copies layer 1 eight times and layer 0 not at all, balanced spreads the 9 arrays by cycles saved.
  copies = balanced_copies(arrays=[1, 1], work=[10, 10], pixels=[64, 64], baseline_arrays=[1, 8])
  assert copies.tolist() == [4, 5] or copies.tolist() == [5, 4]
  assert balanced_copies([1, 1], [10, 10], [64, 64], [1, 8]).sum() == 9
  # Plateaus of ceil(P / k) are skipped: 5 pixels need 5 copies to go below 2 cycles per copy.
  assert balanced_copies([1], [1], [5], [5]).tolist() == [5]
  assert balanced_copies([0, 2], [0, 3], [4, 4], [1, 2]).tolist() == [0, 1]


def test_cost_model_options_by_hand():
  hw = HardwareConfig()
  # A 4-row OU with 8 columns and a 9-row one with 2: the counts' histograms.
  cost = {"ou_by_rows": [0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "adc_by_rows": [0, 0, 0, 0, 8, 0, 0, 0, 0, 2],
          "dac_per_pixel": 13}
  plain = energy_per_pixel(cost, hw)
  assert plain["energy_rram_pj"] == pytest.approx(2 * 4.8)
  assert plain["energy_adc_pj"] == pytest.approx(10 * 1.67)
  assert plain["energy_dac_pj"] == pytest.approx(13 * 0.0182)
  per_row = energy_per_pixel(cost, hw, CostModel(ou_energy="per_row"))
  assert per_row["energy_rram_pj"] == pytest.approx(4.8 * 13 / 9)
  # 4 rows: largest sum 4 * 15 * 15 = 900, 112 steps of 8: 7 bits; 9 rows: 253 steps: 8 bits.
  assert sum_bits([1, 4, 9], hw).tolist() == [5, 7, 8]
  bits = energy_per_pixel(cost, hw, CostModel(adc_energy="bits_needed"))
  assert bits["energy_adc_pj"] == pytest.approx(1.67 * (8 / 2 + 2))
  # The ADC's resolution: a 4-bit ADC costs 1.67 / 16 per conversion (x2 per bit from 8 bits).
  four = energy_per_pixel(cost, hw.replace(adc_bits=4))
  assert four["energy_adc_pj"] == pytest.approx(10 * 1.67 / 16)
  flat = energy_per_pixel(cost, hw.replace(adc_bits=4), CostModel(adc_energy_per_bit_factor=1.0))
  assert flat["energy_adc_pj"] == pytest.approx(10 * 1.67)
  anchored = energy_per_pixel(cost, hw.replace(adc_bits=6), CostModel(adc_energy_anchor_bits=6,
                                                                       adc_energy_anchor_pj=1.0))
  assert anchored["energy_adc_pj"] == pytest.approx(10 * 1.0)
  assert plain["energy_pj"] == pytest.approx(sum(plain[k] for k in ("energy_rram_pj", "energy_adc_pj", "energy_dac_pj")))


@SETTINGS
@given(masks(), hardware())
def test_row_histograms_agree_with_counts(mask, hw):
  """Per-row RRAM energy and the DAC count read the same rows: sum of OU heights = DAC conversions."""
  mapped = map_layer(mask, hw, schemes=("pattern", "packed"))
  for entry in mapped.values():
    heights = np.arange(hw.ou_rows + 1)
    assert heights @ np.asarray(entry["ou_by_rows"]) == entry["dac_per_pixel"]
    assert sum(entry["ou_by_rows"]) == entry["ou_per_pixel"] and sum(entry["adc_by_rows"]) == entry["adc_per_pixel"]
    per_row = energy_per_pixel(entry, hw, CostModel(ou_energy="per_row"))["energy_rram_pj"]
    assert per_row == pytest.approx(hw.e_ou_pj * entry["dac_per_pixel"] / hw.ou_rows)


def test_packed_and_best_by_hand():
  """16 channels x 8 filters, centre taps only: pattern blocks are 16 tiles of 1 row x 16 columns
  (two OU tiles of 8 each); packed groups of 4 filters need the 16 centre rows: 2 OUs each."""
  mask = np.zeros((3, 3, 16, 8), bool)
  mask[1, 1] = True
  mapped = map_layer(mask, schemes=("pattern", "packed", "best"))
  pattern, packed = mapped["pattern"], mapped["packed"]
  assert (pattern["ou_per_pixel"], pattern["adc_per_pixel"], pattern["dac_per_pixel"]) == (32, 256, 32)
  assert (packed["ou_per_pixel"], packed["adc_per_pixel"], packed["dac_per_pixel"]) == (4, 32, 32)
  assert packed["ou_by_rows"][9] == 2 and packed["ou_by_rows"][7] == 2  # 16 rows: 9 + 7 per group
  assert mapped["best"]["chosen"] == "packed" and mapped["best"]["ou_per_pixel"] == 4
  assert map_layer(mask, schemes=("best",), objective="area")["best"]["arrays"] == 1


def test_map_run_reports_the_run_scheme_first():
  masks, extra = tiny_network()
  report = map_run(masks, [4, 3], None, MapperConfig(scheme="packed", ou_energy="per_row"), extra_layers=extra)
  assert report["schemes"] == ["packed", "pattern", "best"]
  assert report["totals"]["ratios"] == report["totals"]["ratios_by_scheme"]["packed"]
  assert report["cost_model"]["ou_energy"] == "per_row" and "scheme" not in report["cost_model"]
  assert report["network_totals"]["packed"]["arrays"] == report["totals"]["packed"]["arrays"] + 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(schemes=("dense",)), "schemes"), (dict(filter_order="random"), "filter_order"),
    (dict(objective="cost"), "objective")])
def test_bad_options_raise_config_error(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    map_layer(np.ones((3, 3, 1, 1)), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ou_energy="per_cell"), "ou_energy"), (dict(adc_energy="fixed"), "adc_energy"),
    (dict(adc_energy_per_bit_factor=0.0), "per_bit_factor"), (dict(adc_energy_anchor_bits=0), "anchor_bits"),
    (dict(adc_energy_anchor_pj=-1.0), "anchor_pj"), (dict(scheme="dense"), "scheme")])
def test_bad_mapper_config_raises_config_error(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    MapperConfig(**kwargs)


@pytest.mark.parametrize("module", ["rramjax.mapper.cost", "rramjax.plan"])
def test_docstring_examples(module):
  import doctest  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  results = doctest.testmod(importlib.import_module(module))
  assert results.attempted > 0 and results.failed == 0
