"""The functional simulator of a mapped layer against the convolution and the OU contract."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import place_tiles, simulate_layer
from rramjax.plan import make_plan

SETTINGS = settings(max_examples=30, deadline=None)


def conv_reference(x, w):
  """Integer 3x3 conv, stride 1, SAME zero padding, as a sum of nine shifted matmuls."""
  _, h, width, _ = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(padded[:, kh:kh + h, kw:kw + width, :] @ w[kh, kw] for kh in range(3) for kw in range(3))


def ou_reference(x, w, mask, hw, lsb):
  """The OU contract written out per (pixel, cin, cout, cell, slice), independent of tiles."""
  _, h, width, cin = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = np.stack([padded[:, kh:kh + h, kw:kw + width] for kh in range(3) for kw in range(3)], axis=3)
  slices = np.stack([(patches >> (s * hw.dac_bits)) & (2**hw.dac_bits - 1) for s in range(hw.input_slices)])
  kept = mask.reshape(9, cin, -1)
  u = (w.reshape(9, cin, -1) + 2**(hw.weight_bits - 1)) * kept
  cells = np.stack([(u >> (j * hw.cell_bits)) & (2**hw.cell_bits - 1) for j in range(hw.cells_per_weight)], -1)
  sums = np.einsum("snhwtc,tcfj->snhwcfj", slices, cells)
  digital = lsb * np.minimum(np.floor(sums / lsb + 0.5), hw.adc_levels - 1)
  scale = np.einsum("s,j->sj", 2.0**(hw.dac_bits * np.arange(hw.input_slices)),
                    2.0**(hw.cell_bits * np.arange(hw.cells_per_weight)))
  y = np.einsum("snhwcfj,sj->nhwf", digital, scale)
  return y - 2**(hw.weight_bits - 1) * np.einsum("nhwtc,tcf->nhwf", patches, kept)


@st.composite
def layers(draw):
  """A random layer: hardware, mask, input codes and weight codes of matching ranges."""
  hw = HardwareConfig(
      ou_rows=draw(st.sampled_from([2, 4, 9])), ou_cols=draw(st.sampled_from([1, 3, 8])),
      array_rows=draw(st.sampled_from([9, 20, 512])), array_cols=24,
      cell_bits=draw(st.sampled_from([1, 2, 3, 4])), weight_bits=draw(st.sampled_from([2, 4, 8])),
      input_bits=draw(st.sampled_from([1, 4, 8])), dac_bits=draw(st.sampled_from([1, 2, 4])),
      sign_encoding=draw(st.sampled_from(["offset", "differential"])))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
  cin, cout = draw(st.integers(1, 4)), draw(st.integers(1, 5))
  mask = (rng.random((3, 3, cin, cout)) < draw(st.floats(0, 1))) & (rng.random((1, 1, cin, cout)) < 0.8)
  top = 2**(hw.weight_bits - 1) - 1
  x = rng.integers(0, 2**hw.input_bits, (n, h, w, cin))
  return hw, mask, x, rng.integers(-top, top + 1, (3, 3, cin, cout))


SCHEMES = st.sampled_from([("pattern", "given"), ("packed", "given"), ("packed", "greedy")])


@SETTINGS
@given(layers(), SCHEMES)
def test_simulator_equals_convolution_without_adc(layer, scheme):
  hw, mask, x, w = layer
  y = simulate_layer(x, w, mask, hw, scheme=scheme[0], filter_order=scheme[1])
  np.testing.assert_array_equal(y, conv_reference(x, w * mask))


@SETTINGS
@given(layers(), SCHEMES)
def test_simulator_with_wide_adc_equals_convolution(layer, scheme):
  hw, mask, x, w = layer
  wide = hw.replace(adc_bits=17)  # LSB 1 for every drawn config; int32 holds its shift-and-add
  assert wide.adc_lsb == 1
  plan = make_plan(mask, wide, *scheme)
  np.testing.assert_array_equal(simulate_layer(x, w, mask, wide, adc_on=True, plan=plan),
                                conv_reference(x, w * mask))


@SETTINGS
@given(layers(), st.sampled_from([3, 4, 6, 8]))
def test_simulator_with_narrow_adc_follows_ou_contract(layer, adc_bits):
  """Kernels fit one OU in height (9 rows), so a tile column's sum is one kernel's OU sum."""
  hw, mask, x, w = layer
  hw = hw.replace(ou_rows=9, array_rows=max(hw.array_rows, 9), adc_bits=adc_bits, sign_encoding="offset")
  y = simulate_layer(x, w, mask, hw, adc_on=True)
  np.testing.assert_array_equal(y, ou_reference(x, w, mask, hw, hw.adc_lsb))
  np.testing.assert_allclose(simulate_layer(x, w, mask, hw, adc_on=True, lsb=2.5),
                             ou_reference(x, w, mask, hw, 2.5))


def test_paper_adc_step_loses_precision_but_stays_close():
  hw = HardwareConfig()
  rng = np.random.default_rng(0)
  mask = rng.random((3, 3, 4, 4)) < 0.5
  x, w = rng.integers(0, 256, (1, 6, 6, 4)), rng.integers(-127, 128, (3, 3, 4, 4))
  exact = conv_reference(x, w * mask)
  y = simulate_layer(x, w, mask, hw, adc_on=True)
  assert hw.adc_lsb == 8 and not np.array_equal(y, exact)
  assert np.max(np.abs(y - exact)) < 0.02 * np.max(np.abs(exact)) * 4


def test_simulator_rejects_out_of_range_codes():
  mask = np.ones((3, 3, 1, 1))
  with pytest.raises(ValueError, match="x_codes"):
    simulate_layer(np.full((1, 2, 2, 1), 256), np.zeros((3, 3, 1, 1), int), mask)
  with pytest.raises(ValueError, match="w_codes"):
    simulate_layer(np.zeros((1, 2, 2, 1), int), np.full((3, 3, 1, 1), -128), mask)


def test_packed_adc_sums_across_channels_by_hand():
  """One filter keeping the centre of 2 channels, a 1-bit cell, a 1-bit DAC, a 2-bit ADC (codes 0..3,
  step 1 on a 2-row OU): the pattern mapping digitises each channel's product apart, the packed
  mapping their sum in one OU, which the ADC clips at 3."""
  hw = HardwareConfig(ou_rows=2, ou_cols=2, array_rows=4, array_cols=2, cell_bits=1, weight_bits=2,
                      input_bits=1, dac_bits=1, adc_bits=2)
  assert hw.ou_full_scale == 2 and hw.adc_lsb == 1 and hw.columns_per_weight == 2
  mask = np.zeros((3, 3, 2, 1), bool)
  mask[1, 1, :, 0] = True
  w = np.zeros((3, 3, 2, 1), int)
  w[1, 1, :, 0] = 1                                   # u = w + 2 = 3: cells (LSB first) 1, 1
  x = np.ones((1, 1, 1, 2), int)                      # one pixel, both inputs 1
  # Column j sums over its OU's rows: pattern (one row per OU) 1 + 1 per column, packed 2 per column.
  # y = sum_j 2^j * sum_OUs ADC(sum) - 2 * (x0 + x1) = (1 + 2) * 2 - 4 = 2 either way (no clipping).
  assert simulate_layer(x, w, mask, hw, adc_on=True, scheme="pattern").item() == 2
  assert simulate_layer(x, w, mask, hw, adc_on=True, scheme="packed").item() == 2
  # With a 1-bit ADC (codes 0..1, step 2 = 2^(2 - 1)) the sums round: a row alone gives
  # floor(1/2 + 0.5) = 1 -> 2 per OU; two rows give floor(2/2 + 0.5) = 1 -> 2 per OU.
  narrow = hw.replace(adc_bits=1)
  assert narrow.adc_lsb == 2
  # pattern: 2 OUs per column, each 2: columns 4 and 4 -> 1 * 4 + 2 * 4 - 4 = 8.
  assert simulate_layer(x, w, mask, narrow, adc_on=True, scheme="pattern").item() == 8
  # packed: 1 OU per column, 2: 1 * 2 + 2 * 2 - 4 = 2 (the exact answer).
  assert simulate_layer(x, w, mask, narrow, adc_on=True, scheme="packed").item() == 2
  # A 3-row packed OU over 3 channels clips: full scale 3 needs 2 bits, so the 1-bit ADC steps by 2;
  # the sum 3 gives floor(3/2 + 0.5) = 2 > top code 1: d = 2 per column, y = 1*2 + 2*2 - 2*3 = 0
  # (exact: 3).
  mask3, w3, x3 = np.zeros((3, 3, 3, 1), bool), np.zeros((3, 3, 3, 1), int), np.ones((1, 1, 1, 3), int)
  mask3[1, 1, :, 0], w3[1, 1, :, 0] = True, 1
  three = narrow.replace(ou_rows=3, array_rows=6)
  assert three.adc_lsb == 2
  assert simulate_layer(x3, w3, mask3, three, adc_on=True, scheme="packed").item() == 0
  assert simulate_layer(x3, w3, mask3, three, adc_on=False, scheme="packed").item() == 3


def test_simulator_runs_a_placement_and_rejects_a_foreign_plan():
  rng = np.random.default_rng(3)
  mask = rng.random((3, 3, 3, 6)) < 0.4
  x, w = rng.integers(0, 256, (1, 4, 4, 3)), rng.integers(-127, 128, (3, 3, 3, 6))
  hw = HardwareConfig(adc_bits=6)
  placement = place_tiles(mask, hw, scheme="packed")
  np.testing.assert_array_equal(simulate_layer(x, w, mask, hw, adc_on=True, placement=placement),
                                simulate_layer(x, w, mask, hw, adc_on=True, scheme="packed"))
  with pytest.raises(ValueError, match="another mask"):
    simulate_layer(x, w, ~mask, hw, plan=placement.plan)
