"""Quantizers, device faults and HardwareConfig validation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rramjax.errors import ConfigError
from rramjax.hardware import (HardwareConfig, fake_quant_inputs, fake_quant_weights, program_cells,
                              quantize_inputs, quantize_weights, round_ste)

# A fixed length and jitted quantizers: one compilation serves every Hypothesis example.
_floats = hnp.arrays(np.float32, 32, elements=st.floats(-10, 10, width=32, allow_nan=False))
_quantize_weights = jax.jit(quantize_weights, static_argnums=1)
_quantize_inputs = jax.jit(quantize_inputs, static_argnums=(1, 2))


def test_round_ste_forward_and_gradient():
  x = jnp.asarray([-1.5, -0.5, 0.49, 0.5, 1.5, 2.5])
  np.testing.assert_array_equal(round_ste(x), [-1.0, 0.0, 0.0, 1.0, 2.0, 3.0])
  chex.assert_trees_all_close(jax.grad(lambda x: jnp.sum(round_ste(x) * 3.0))(x), jnp.full(6, 3.0))


@pytest.mark.parametrize("bits", [2, 8, 12])
@settings(max_examples=25, deadline=None)
@given(w=_floats)
def test_weight_codes_are_symmetric_integers(bits, w):
  codes, scale = _quantize_weights(jnp.asarray(w), bits)
  qmax = 2 ** (bits - 1) - 1
  c = np.asarray(codes)
  np.testing.assert_array_equal(c, np.round(c))
  assert np.abs(c).max() <= qmax
  if np.abs(w).max() / qmax >= np.finfo(np.float32).tiny:
    assert np.abs(c).max() == qmax  # the largest weight takes the largest code
    assert np.abs(np.asarray(codes * scale) - w).max() <= float(scale) / 2 * (1 + 1e-5)
  else:  # zero, or a scale below the smallest normal float: counts as an all-zero tensor
    assert float(scale) == 1.0
    assert np.abs(c).max() == 0


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weight_fake_quant_gradient_is_identity(bits):
  w = jax.random.normal(jax.random.key(0), (3, 3, 4, 5))
  grad = jax.jit(jax.grad(lambda w: jnp.sum(fake_quant_weights(w, bits) * jnp.arange(5.0))))(w)
  chex.assert_trees_all_close(grad, jnp.broadcast_to(jnp.arange(5.0), w.shape), rtol=1e-6)


@pytest.mark.parametrize("bits,scale", [(1, 1.0), (4, 2.0), (8, 6.5)])
@settings(max_examples=25, deadline=None)
@given(x=_floats)
def test_input_codes_range_and_step(bits, scale, x):
  codes, step = _quantize_inputs(jnp.asarray(x), bits, scale)
  c = np.asarray(codes)
  np.testing.assert_array_equal(c, np.round(c))
  assert c.min() >= 0 and c.max() <= 2**bits - 1
  np.testing.assert_allclose(float(step), scale / (2**bits - 1), rtol=1e-6)
  inside = (x >= 0) & (x <= scale)
  np.testing.assert_array_less(np.abs(c * float(step) - x)[inside], float(step) / 2 + 1e-5)


@pytest.mark.parametrize("bits", [2, 8])
def test_input_gradient_one_inside_zero_outside(bits):
  x = jnp.asarray([-0.5, 0.0, 0.3, 1.999, 2.0, 2.01, 7.0])
  grad = jax.grad(lambda x: jnp.sum(fake_quant_inputs(x, bits, 2.0)))(x)
  chex.assert_trees_all_close(grad, jnp.asarray([0, 1, 1, 1, 1, 0, 0], jnp.float32), rtol=1e-6)
  codes_grad = jax.grad(lambda x: jnp.sum(quantize_inputs(x, bits, 2.0)[0]))(x)
  chex.assert_trees_all_close(codes_grad, grad * (2**bits - 1) / 2.0, rtol=1e-6)


def test_programming_noise_and_stuck_rates_match_parameters():
  hw = HardwareConfig(prog_noise=0.4, stuck_at_0_rate=0.05, stuck_at_max_rate=0.03)
  cells = jnp.full((400_000,), 7.0)
  g = np.asarray(program_cells(cells, hw, jax.random.key(0)))
  stuck_0, stuck_max = g == 0.0, g == 15.0
  np.testing.assert_allclose(stuck_0.mean(), 0.05, atol=0.002)
  np.testing.assert_allclose(stuck_max.mean(), 0.03, atol=0.002)
  free = g[~stuck_0 & ~stuck_max]
  np.testing.assert_allclose(free.std(), 0.4, rtol=0.01)
  np.testing.assert_allclose(free.mean(), 7.0, atol=0.005)
  again = np.asarray(program_cells(cells, hw, jax.random.key(0)))
  other = np.asarray(program_cells(cells, hw, jax.random.key(1)))
  np.testing.assert_array_equal(g, again)
  assert not np.array_equal(g, other)


def test_program_cells_leaves_unstored_cells_and_gradient():
  hw = HardwareConfig(prog_noise=1.0, stuck_at_max_rate=0.5)
  cells = jnp.full((1000,), 3.0)
  stored = jnp.arange(1000) % 2 == 0
  g = program_cells(cells, hw, jax.random.key(2), stored=stored)
  np.testing.assert_array_equal(np.asarray(g)[1::2], 0.0)
  grad = jax.grad(lambda c: jnp.sum(program_cells(c, hw, jax.random.key(2), stored=stored)))(cells)
  stuck = np.asarray(g) == 15.0
  np.testing.assert_array_equal(np.asarray(grad), (np.asarray(stored) & ~stuck).astype(np.float32))
  assert program_cells(cells, HardwareConfig(), jax.random.key(0)) is cells  # no faults: no-op


@pytest.mark.parametrize("changes", [
    {"adc_bits": 0}, {"ou_rows": 600}, {"ou_cols": 1024}, {"read_noise_lsb": -0.1},
    {"prog_noise": -1.0}, {"stuck_at_0_rate": 1.5}, {"stuck_at_0_rate": 0.6, "stuck_at_max_rate": 0.6},
    {"sign_encoding": "twos"}, {"adc_full_scale": "auto"}, {"weight_bits": 1},
    {"adc_percentile": 0.0}, {"cell_bits": 2.5},
    # Bit widths beyond what the integer model holds (weight_bits=40 used to overflow 30 s in).
    {"weight_bits": 40, "adc_bits": 40}, {"weight_bits": 17}, {"input_bits": 17}, {"cell_bits": 9},
    {"dac_bits": 9}, {"adc_bits": 25}, {"adc_bits": 20, "cell_bits": 1, "dac_bits": 1},
    {"weight_bits": 16, "input_bits": 16, "cell_bits": 8, "dac_bits": 8, "adc_bits": 16},
])
def test_config_validation(changes):
  with pytest.raises(ConfigError):
    HardwareConfig(**changes)


def test_widest_bit_widths_int32_holds_are_accepted():
  """adc_bits + shifts = 31 exactly: the largest shifted ADC code is (2^15 - 1) * 2^16 < 2^31."""
  hw = HardwareConfig(weight_bits=16, input_bits=16, cell_bits=8, dac_bits=8, adc_bits=15)
  assert (2**hw.adc_bits - 1) * 2 ** (hw.dac_bits + hw.cell_bits) < 2**31
  HardwareConfig(adc_bits=24, cell_bits=2, dac_bits=2, weight_bits=4, input_bits=4)  # 24 + 2 + 2


def test_config_derived_defaults():
  hw = HardwareConfig()
  assert (hw.cells_per_weight, hw.input_slices, hw.ou_full_scale, hw.adc_lsb, hw.adc_levels) == (
      2, 2, 2025, 8, 256)
  assert hw.replace(sign_encoding="differential").columns_per_weight == 4


@pytest.mark.parametrize("bits", [2, 8])
def test_subnormal_weights_quantize_to_zero_on_every_backend(bits):
  w = jnp.full((32,), 6.12e-43, jnp.float32)  # subnormal: flushed to zero by XLA on CPU
  codes, scale = _quantize_weights(w, bits)
  assert float(scale) == 1.0
  np.testing.assert_array_equal(np.asarray(codes), 0.0)
