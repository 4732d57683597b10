"""The bit-exact OU crossbar: exactness, ADC, gradients, noise, keys, jit/vmap."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rramjax.hardware import (HardwareConfig, adc_convert, crossbar_conv, input_slices,
                              integer_conv, max_ou_sum, ou_sum_histogram, sums_needed_bits,
                              weight_cells)


# One jitted entry point, so Hypothesis examples of equal shapes reuse one compilation.
_xbar = jax.jit(crossbar_conv, static_argnames=("hw", "chunk_elements"))


def _np_conv(x, w):
  """int64 3x3 SAME cross-correlation, NHWC x HWIO."""
  n, h, wd, _ = x.shape
  xp = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = np.zeros((n, h, wd, w.shape[-1]), np.int64)
  for i in range(3):
    for j in range(3):
      y += np.einsum("nhwc,cf->nhwf", xp[:, i:i + h, j:j + wd, :], w[i, j].astype(np.int64))
  return y


def _problem(seed, hw, n=2, size=5, cin=4, cout=3, kind="random"):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 2**hw.input_bits, (n, size, size, cin))
  qmax = 2 ** (hw.weight_bits - 1) - 1
  w = rng.integers(-qmax, qmax + 1, (3, 3, cin, cout))
  if kind == "pattern":  # one of a few 4-entry patterns per kernel, some kernels pruned whole
    library = np.zeros((3, 9))
    for p in range(3):
      library[p, rng.choice(9, 4, replace=False)] = 1
    choice = library[rng.integers(0, 3, (cin, cout))] * (rng.random((cin, cout, 1)) < 0.7)
    mask = np.transpose(choice.reshape(cin, cout, 3, 3), (2, 3, 0, 1))
  else:
    mask = (rng.random((3, 3, cin, cout)) < 0.6).astype(np.float64)
    mask[:, :, 0, 0] = 0  # an all-zero kernel
  return x, w, mask


def _wide(hw):
  return hw.replace(adc_bits=sums_needed_bits(hw))


@pytest.mark.parametrize("encoding,kind,weight_bits,cell_bits,input_bits,dac_bits", [
    ("offset", "random", 8, 4, 8, 4), ("offset", "pattern", 8, 2, 8, 1),
    ("offset", "pattern", 6, 4, 5, 2), ("offset", "random", 8, 8, 8, 8),
    ("differential", "pattern", 8, 4, 8, 4), ("differential", "random", 4, 1, 4, 4),
    ("differential", "pattern", 7, 3, 6, 3),
])
def test_wide_adc_equals_integer_conv(encoding, kind, weight_bits, cell_bits, input_bits, dac_bits):
  hw = _wide(HardwareConfig(weight_bits=weight_bits, cell_bits=cell_bits, input_bits=input_bits,
                            dac_bits=dac_bits, sign_encoding=encoding))
  x, w, mask = _problem(weight_bits + cell_bits, hw, kind=kind)
  y = _xbar(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
            jnp.asarray(mask), hw, chunk_elements=500)  # several chunks
  np.testing.assert_array_equal(np.asarray(y, np.int64), _np_conv(x, w * mask))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cin=st.sampled_from([1, 5]), chunk=st.sampled_from([1, 2**24]))
def test_wide_adc_exact_property(seed, cin, chunk):
  hw = _wide(HardwareConfig())
  x, w, mask = _problem(seed, hw, n=1, size=4, cin=cin, cout=3, kind="pattern")
  y = _xbar(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), jnp.asarray(mask), hw,
                    chunk_elements=chunk)
  np.testing.assert_array_equal(np.asarray(y, np.int64), _np_conv(x, w * mask))


def test_bit_slices_recombine():
  hw = HardwareConfig(dac_bits=3, cell_bits=3)
  x = jnp.arange(256.0)
  s = input_slices(x, hw)
  chex.assert_shape(s, (256, 3))
  np.testing.assert_array_equal(s @ (2.0 ** (3 * jnp.arange(3))), x)
  w = jnp.arange(-127.0, 128.0)
  cells, place = weight_cells(w, jnp.ones_like(w), hw)
  np.testing.assert_array_equal(cells @ jnp.asarray(place, jnp.float32), w + 128)
  assert float(cells.max()) == 7.0 and float(cells.min()) == 0.0


@pytest.mark.parametrize("adc_bits", [1, 3, 5, 8, 11])
def test_adc_levels_and_saturation(adc_bits):
  hw = HardwareConfig(adc_bits=adc_bits)
  sums = jnp.linspace(-50.0, 3000.0, 20001)
  d = adc_convert(sums, hw)
  levels = np.unique(np.asarray(d))
  assert len(levels) == 2**adc_bits
  np.testing.assert_allclose(np.diff(levels), hw.adc_lsb)
  assert float(d.max()) == hw.adc_lsb * (2**adc_bits - 1) and float(d.min()) == 0.0
  # Calibrated full scale: the top level is the full scale itself.
  sums = jnp.linspace(-5.0, 110.0, 2**adc_bits * 40)
  d_cal = adc_convert(sums, hw, full_scale=100.0)
  assert len(np.unique(np.asarray(d_cal))) == 2**adc_bits
  np.testing.assert_allclose(float(d_cal.max()), 100.0, rtol=1e-6)


def test_adc_rounds_half_up():
  hw = HardwareConfig()  # LSB 8
  d = adc_convert(jnp.asarray([3.99, 4.0, 11.99, 12.0]), hw)
  np.testing.assert_array_equal(d, [0.0, 8.0, 8.0, 16.0])


def test_adc_straight_through_gradient():
  hw = HardwareConfig(adc_bits=4)  # LSB 128, top level 1920, codes clip above 1983.99
  sums = jnp.asarray([-100.0, -65.0, -64.0, 0.0, 500.0, 1920.0, 1983.0, 1984.0, 5000.0])
  grad = jax.grad(lambda s: jnp.sum(adc_convert(s, hw)))(sums)
  # inside = unclipped code floor(s/128 + 0.5) in [0, 15].
  chex.assert_trees_all_close(grad, jnp.asarray([0, 0, 1, 1, 1, 1, 1, 0, 0], jnp.float32))
  g_fs = jax.grad(lambda fs: jnp.sum(adc_convert(sums, hw, full_scale=fs)))(1920.0)
  chex.assert_trees_all_close(g_fs, 2.0)  # PACT: one per sum clipped at the top


def _naive_crossbar(x, w, mask, hw, full_scale):
  """Reference built from `adc_convert` and autodiff, materialising every OU sum (tiny sizes)."""
  stored = mask != 0
  xs = input_slices(x, hw)                               # (N,H,W,C,S)
  cells, place = weight_cells(w, stored, hw)             # (3,3,C,F,J)
  xp = jnp.pad(xs, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)))
  h, wd = x.shape[1:3]
  patches = jnp.stack([xp[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)], 0)
  sums = jnp.einsum("tnhwcs,tcfj->nhwcfsj", patches, cells.reshape(9, *cells.shape[2:]))
  d = adc_convert(sums, hw, full_scale)
  present = jnp.any(stored, axis=(0, 1))[:, :, None, None]
  weights = (2.0 ** (hw.dac_bits * jnp.arange(hw.input_slices)))[:, None] * jnp.asarray(place)
  y = jnp.einsum("nhwcfsj,sj->nhwf", d * present, weights)
  if hw.sign_encoding == "offset":
    y = y - 2 ** (hw.weight_bits - 1) * integer_conv(x, jnp.ones_like(w), mask)
  return y


# Full scales with LSB 12.5 and 2.5: no integer sum sits on a rounding tie, where the float
# details of `sum / LSB` (division or reciprocal) would decide.
@pytest.mark.parametrize("encoding,adc_bits,full_scale", [
    ("offset", 8, None), ("differential", 3, None), ("offset", 5, 387.5),
    ("differential", 4, 37.5)])
def test_custom_vjp_matches_naive_reference(encoding, adc_bits, full_scale):
  hw = HardwareConfig(adc_bits=adc_bits, sign_encoding=encoding)
  x, w, mask = _problem(3, hw, n=2, size=4, cin=3, cout=2, kind="pattern")
  x, w, mask = (jnp.asarray(a, jnp.float32) for a in (x, w, mask))
  r = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
  fs = None if full_scale is None else jnp.float32(full_scale)

  def loss(fn, x, w, fs):
    return jnp.sum(fn(x, w, mask, hw, fs) * r)

  fast = lambda x, w, m, hw, fs: crossbar_conv(x, w, m, hw, full_scale=fs, chunk_elements=100)
  np.testing.assert_allclose(fast(x, w, mask, hw, fs), _naive_crossbar(x, w, mask, hw, fs),
                             rtol=1e-6, atol=1e-3)
  argnums = (1, 2, 3) if fs is not None else (1, 2)
  got = jax.jit(jax.grad(loss, argnums), static_argnums=0)(fast, x, w, fs)
  want = jax.jit(jax.grad(loss, argnums), static_argnums=0)(_naive_crossbar, x, w, fs)
  chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-3)


def test_gradient_equals_integer_conv_gradient_without_clipping():
  hw = _wide(HardwareConfig())
  x, w, mask = _problem(5, hw, kind="pattern")
  x, w, mask = (jnp.asarray(a, jnp.float32) for a in (x, w, mask))
  r = jax.random.normal(jax.random.key(2), (2, 5, 5, 3))
  got = jax.jit(jax.grad(lambda x, w: jnp.sum(crossbar_conv(x, w, mask, hw) * r), (0, 1)))(x, w)
  want = jax.jit(jax.grad(lambda x, w: jnp.sum(integer_conv(x, w, mask) * r), (0, 1)))(x, w)
  chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-3)


def test_read_noise_std_matches_parameter():
  hw = HardwareConfig(read_noise_lsb=0.7, adc_bits=20)  # LSB 1: d - sum is noise + rounding
  sums = jnp.full((200_000,), 500.0)
  d = adc_convert(sums, hw, key=jax.random.key(0))
  # Rounding a N(0, s^2) variable to integers adds variance 1/12.
  np.testing.assert_allclose(float(jnp.std(d - sums)), np.sqrt(0.7**2 + 1 / 12), rtol=0.02)
  np.testing.assert_allclose(float(jnp.mean(d - sums)), 0.0, atol=0.01)


def test_same_key_same_result_different_keys_differ():
  hw = HardwareConfig(read_noise_lsb=3.0, stuck_at_max_rate=0.2)
  x, w, mask = _problem(2, hw)
  mask[:, :, :, 1] = 0  # output channel 1 has no kernel at all: no OU, no noise
  x, w, mask = (jnp.asarray(a, jnp.float32) for a in (x, w, mask))
  run = jax.jit(lambda key: crossbar_conv(x, w, mask, hw, key=key))
  a, b, c = run(jax.random.key(7)), run(jax.random.key(7)), run(jax.random.key(8))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(np.asarray(a), np.asarray(c))
  np.testing.assert_array_equal(np.asarray(a[..., 1]), 0.0)


def test_jit_and_vmap_over_keys():
  hw = HardwareConfig(read_noise_lsb=0.5, prog_noise=0.2)
  x, w, mask = (jnp.asarray(a, jnp.float32) for a in _problem(4, hw))
  r = jnp.linspace(-1.0, 1.0, 3)
  loss = lambda w, key: jnp.sum(crossbar_conv(x, w, mask, hw, key=key, chunk_elements=300) * r)
  keys = jax.random.split(jax.random.key(0), 3)
  values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss), (None, 0)))(w, keys)
  chex.assert_shape(grads, (3,) + w.shape)
  chex.assert_tree_all_finite(grads)
  assert len(set(np.asarray(values).tolist())) == 3
  one_value, one_grad = jax.jit(jax.value_and_grad(loss))(w, keys[1])
  np.testing.assert_allclose(values[1], one_value, rtol=1e-5)
  chex.assert_trees_all_close(grads[1], one_grad, rtol=1e-5, atol=1e-3)


def test_ou_sum_histogram_counts_every_ou():
  hw = HardwareConfig()
  x, w, mask = _problem(6, hw, kind="pattern")
  counts = ou_sum_histogram(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                            jnp.asarray(mask), hw, chunk_elements=200)
  chex.assert_shape(counts, (max_ou_sum(hw) + 1,))
  kernels = int(np.any(mask != 0, axis=(0, 1)).sum())
  expected = 2 * 5 * 5 * kernels * hw.input_slices * hw.columns_per_weight
  assert int(counts.sum()) == expected


def test_fast_normal_moments_shape_of_distribution_and_independence():
  from rramjax.hardware import fast_normal  # pylint: disable=g-import-not-at-top
  n = np.asarray(jax.jit(fast_normal, static_argnums=1)(jax.random.key(3), (1000, 1000)))
  assert n.shape == (1000, 1000) and n.dtype == np.float32
  np.testing.assert_allclose(n.mean(), 0.0, atol=5e-3)
  np.testing.assert_allclose(n.std(), 1.0, rtol=5e-3)
  # The exact law: four uniform bytes summed (Irwin-Hall), centred and scaled.
  law = np.ones(256)
  for _ in range(3):
    law = np.convolve(law, np.ones(256))
  law /= law.sum()
  values = (np.arange(law.size) - 510.0) / np.sqrt(4 * (256**2 - 1) / 12)
  for t in (0.5, 1.0, 2.0, 3.0):
    np.testing.assert_allclose((np.abs(n) < t).mean(), law[np.abs(values) < t].sum(), atol=3e-3)
  assert np.abs(n).max() <= 3.46
  # Neighbours (both axes) and other keys are uncorrelated; the same key repeats.
  flat = n.ravel()
  assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 5e-3
  assert abs(np.corrcoef(n[:-1].ravel(), n[1:].ravel())[0, 1]) < 5e-3
  other = np.asarray(fast_normal(jax.random.key(4), (1000, 1000)))
  assert abs(np.corrcoef(flat, other.ravel())[0, 1]) < 5e-3
  np.testing.assert_array_equal(n, np.asarray(fast_normal(jax.random.key(3), (1000, 1000))))


def test_fast_normal_vmap_matches_per_key_draws():
  from rramjax.hardware import fast_normal  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.key(0), 3)
  batched = jax.vmap(lambda k: fast_normal(k, (7, 5)))(keys)
  for i in range(3):
    np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(fast_normal(keys[i], (7, 5))))
