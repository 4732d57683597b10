"""The float conv wrapper: ideal / quant / ou, hw_state, calibration, learned full scale."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rramjax.errors import ConfigError
from rramjax.hardware import (HardwareConfig, calibrate_act_scales, calibrate_adc_full_scale,
                              init_hw_state, input_slices, make_conv_fn, quantize_inputs,
                              quantize_weights, sums_needed_bits, weight_cells)


def _layer(seed=0, n=2, size=6, cin=4, cout=5, x_max=3.0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.uniform(0, x_max, (n, size, size, cin)), jnp.float32)
  mask = jnp.asarray(rng.random((3, 3, cin, cout)) < 0.5, jnp.float32).at[:, :, 1, 2].set(0.0)
  kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32) * mask
  return x, kernel, mask


def _run(fidelity, hw, hw_state, x, kernel, mask, layer=0, key=None):
  """Value and gradient w.r.t. (x, kernel) of a weighted sum of the layer's output, jitted."""
  r = jnp.linspace(-1.0, 1.0, kernel.shape[-1])
  loss = lambda x, k: jnp.sum(make_conv_fn(fidelity, hw, hw_state, key)(x, k, mask, layer) * r)
  return jax.jit(jax.value_and_grad(loss, (0, 1)))(x, kernel)


def test_ideal_is_plain_conv():
  x, kernel, mask = _layer()
  y = make_conv_fn("ideal", HardwareConfig(), init_hw_state(1, HardwareConfig()))(x, kernel, mask, 0)
  want = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  chex.assert_trees_all_close(y, want, rtol=1e-5, atol=1e-5)
  with pytest.raises(ConfigError):
    make_conv_fn("analog", HardwareConfig(), {})


@pytest.mark.parametrize("encoding", ["offset", "differential"])
@pytest.mark.parametrize("weight_bits,input_bits", [(8, 8), (4, 6)])
def test_ou_equals_quant_for_wide_adc(encoding, weight_bits, input_bits):
  hw = HardwareConfig(weight_bits=weight_bits, input_bits=input_bits, sign_encoding=encoding)
  hw = hw.replace(adc_bits=sums_needed_bits(hw))
  state = init_hw_state(2, hw)
  state["act_scale"] = jnp.asarray([1.0, 2.5])  # layer 1 clips inputs above 2.5
  x, kernel, mask = _layer()
  y_quant, g_quant = _run("quant", hw, state, x, kernel, mask, layer=1)
  y_ou, g_ou = _run("ou", hw, state, x, kernel, mask, layer=1)
  np.testing.assert_allclose(y_ou, y_quant, rtol=1e-4)
  # Positions outside the mask are not crossbar rows: 'ou' gives them no gradient.
  chex.assert_trees_all_close(g_ou, (g_quant[0], g_quant[1] * mask), rtol=1e-4, atol=1e-4)


def test_default_adc_is_close_to_quant():
  hw = HardwareConfig()  # 8-bit ADC, LSB 8: rounding error only
  state = init_hw_state(1, hw).copy()
  state["act_scale"] = jnp.asarray([3.0])
  x, kernel, mask = _layer(cin=8)
  conv = lambda f: jax.jit(make_conv_fn(f, hw, state), static_argnums=3)(x, kernel, mask, 0)
  y_quant, y_ou = conv("quant"), conv("ou")
  assert not np.allclose(y_ou, y_quant)
  assert float(jnp.linalg.norm(y_ou - y_quant) / jnp.linalg.norm(y_quant)) < 0.05


def test_noise_keys_fold_in_layer():
  hw = HardwareConfig(read_noise_lsb=1.0)
  state = init_hw_state(2, hw)
  x, kernel, mask = _layer()
  conv = jax.jit(lambda key: jnp.stack([make_conv_fn("ou", hw, state, key)(x, kernel, mask, l)
                                        for l in (0, 1)]))
  a, b = conv(jax.random.key(0)), conv(jax.random.key(0))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))  # same input, other layer key


def test_calibrate_act_scales():
  state = init_hw_state(3, HardwareConfig())
  x0, _, _ = _layer(x_max=1.0)
  x1 = jnp.asarray([[0.0, 4.0], [2.0, 1.0]])
  new = calibrate_act_scales(state, [x0, x1, None])
  np.testing.assert_allclose(new["act_scale"], [1.0, 4.0, 1.0])
  assert set(new) == {"act_scale", "adc_full_scale"}


def test_calibrate_act_scales_takes_the_percentile():
  state = init_hw_state(2, HardwareConfig())
  new = calibrate_act_scales(state, [None, jnp.arange(101.0)], percentile=90.0)  # values 0..100
  np.testing.assert_allclose(new["act_scale"], [1.0, 90.0])


@jax.jit
def _observed_sums(x, kernel, mask, act_scale):
  hw = HardwareConfig()
  x_codes, _ = quantize_inputs(x, hw.input_bits, act_scale)
  w_codes, _ = quantize_weights(kernel, hw.weight_bits)
  cells, _ = weight_cells(w_codes, mask, hw)
  xp = jnp.pad(input_slices(x_codes, hw), ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)))
  h, w = x.shape[1:3]
  patches = jnp.stack([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], 0)
  return jnp.einsum("tnhwcs,tcfj->nhwcfsj", patches, cells.reshape(9, *cells.shape[2:]))


@pytest.mark.parametrize("percentile", [100.0, 90.0])
def test_calibrate_adc_full_scale_is_percentile_of_sums(percentile):
  hw = HardwareConfig(adc_full_scale="calibrated")
  x, kernel, mask = _layer()
  state = init_hw_state(2, hw)
  state["act_scale"] = jnp.asarray([3.0, 1.0])
  new = calibrate_adc_full_scale(state, [x, None], [kernel, None], [mask, None], hw,
                                 percentile=percentile, chunk_elements=500)
  present = np.asarray(jnp.any(mask != 0, axis=(0, 1)))
  sums = np.asarray(_observed_sums(x, kernel, mask, 3.0))[:, :, :, present]
  np.testing.assert_allclose(new["adc_full_scale"][0],
                             np.percentile(sums, percentile, method="inverted_cdf"))
  np.testing.assert_allclose(new["adc_full_scale"][1], state["adc_full_scale"][1])


def test_initial_full_scale_makes_modes_identical():
  hw = HardwareConfig()
  state = init_hw_state(1, hw).copy()
  state["act_scale"] = jnp.asarray([3.0])
  x, kernel, mask = _layer()
  ys = [make_conv_fn("ou", hw.replace(adc_full_scale=m), state)(x, kernel, mask, 0)
        for m in ("max", "calibrated")]
  np.testing.assert_array_equal(ys[0], ys[1])


@pytest.mark.parametrize("mode", ["learned", "calibrated"])
def test_learned_full_scale_gets_gradient(mode):
  hw = HardwareConfig(adc_full_scale=mode)
  x, kernel, mask = _layer()
  state = init_hw_state(2, hw)
  state = {"act_scale": jnp.asarray([3.0, 3.0]), "adc_full_scale": jnp.asarray([2040.0, 200.0])}
  r = jnp.linspace(1.0, 2.0, kernel.shape[-1])
  loss = lambda s: jnp.sum(make_conv_fn("ou", hw, s)(x, kernel, mask, 1) * r)
  grad = jax.jit(jax.grad(loss))(state)
  chex.assert_trees_all_equal_shapes(grad, state)
  assert float(grad["adc_full_scale"][0]) == 0.0  # layer 0 not used
  if mode == "learned":
    assert float(grad["adc_full_scale"][1]) != 0.0  # a 200 full scale clips: PACT gradient
  else:
    assert float(grad["adc_full_scale"][1]) == 0.0
