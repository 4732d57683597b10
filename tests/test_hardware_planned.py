"""The planned `ou` path (`crossbar_conv(..., plan=make_ou_plan(mask, hw))`) against the reference
path and the mapper's functional simulation: outputs bit for bit, gradients, the noise law, every
backend, both mapping schemes and other OU shapes."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rramjax.errors import ConfigError
from rramjax.hardware import (HardwareConfig, crossbar_conv, default_backend, lowering_for_gpu,
                              make_ou_plan)
from rramjax.mapper import simulate_layer

BACKENDS = ["numba", "xla", "pallas"]


def _problem(seed, hw, n=2, h=4, w=5, cin=4, cout=5, keep=0.6, patterns=True):
  """Integer codes and a mask with pruned kernels, one empty input channel and one empty filter."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 2**hw.input_bits, (n, h, w, cin)).astype(np.float32)
  qmax = 2 ** (hw.weight_bits - 1) - 1
  wc = rng.integers(-qmax, qmax + 1, (3, 3, cin, cout)).astype(np.float32)
  if patterns:
    library = np.zeros((3, 9), bool)
    for p in range(3):
      library[p, rng.choice(9, int(rng.integers(1, 6)), replace=False)] = True
    rows = library[rng.integers(0, 3, (cin, cout))] & (rng.random((cin, cout, 1)) < keep)
    mask = np.transpose(rows.reshape(cin, cout, 3, 3), (2, 3, 0, 1))
  else:
    mask = rng.random((3, 3, cin, cout)) < keep
  mask[:, :, min(1, cin - 1), :] = False
  mask[:, :, :, cout - 1] = False
  return x, wc, mask


def _run(hw, plan=None, backend=None):
  """Jitted output and (x, w, full scale) gradients of `sum(y * r)`."""
  def f(x, w, mask, full_scale, r):
    fs = None if hw.adc_full_scale == "max" else full_scale
    return jnp.sum(crossbar_conv(x, w, mask, hw, full_scale=fs, plan=plan, backend=backend) * r)

  def y(x, w, mask, full_scale):
    fs = None if hw.adc_full_scale == "max" else full_scale
    return crossbar_conv(x, w, mask, hw, full_scale=fs, plan=plan, backend=backend)

  return jax.jit(y), jax.jit(jax.grad(f, argnums=(0, 1, 3)))


BITS = [(8, 4, 8, 4, 8), (8, 2, 6, 3, 5), (6, 3, 4, 4, 4), (5, 5, 3, 1, 3)]
SHAPES = [(1, 3, 3, 2, 3), (2, 4, 5, 4, 5), (1, 6, 2, 3, 9)]


@pytest.mark.parametrize("backend", ["numba", "xla"])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6), encoding=st.sampled_from(["offset", "differential"]),
       mode=st.sampled_from(["max", "calibrated", "learned"]), bits=st.sampled_from(BITS),
       shape=st.sampled_from(SHAPES), patterns=st.booleans())
def test_planned_equals_reference(backend, seed, encoding, mode, bits, shape, patterns):
  _check_against_reference(backend, seed, encoding, mode, bits, shape, patterns)


@pytest.mark.parametrize("encoding, mode, bits, shape", [
    ("offset", "max", BITS[0], SHAPES[1]), ("differential", "learned", BITS[1], SHAPES[2]),
    ("offset", "calibrated", BITS[3], SHAPES[0])])
def test_pallas_kernel_equals_reference(encoding, mode, bits, shape):
  """The GPU kernel, run in Pallas's interpret mode on the CPU (compiles slowly: few cases)."""
  _check_against_reference("pallas", 1, encoding, mode, bits, shape, True)


@pytest.mark.parametrize("scheme, encoding", [("pattern", "offset"), ("packed", "differential")])
def test_pallas_kernel_lowers_for_cuda(scheme, encoding):
  """The GPU kernel compiled, not interpreted: forward, backward and vmapped as a sweep does,
  lowered for CUDA within `lowering_for_gpu`. Pallas's Triton lowering rejects what interpret mode
  runs happily (a missing primitive such as `round`, an unsupported index); this catches it
  without a GPU. (Triton's own compilation to PTX happens on the GPU only:
  scripts/device_check.sh.)"""
  hw = HardwareConfig(read_noise_lsb=0.5, adc_full_scale="calibrated", sign_encoding=encoding)
  x, wc, mask = _problem(3, hw)
  m, plan = jnp.asarray(mask, jnp.float32), make_ou_plan(mask, hw, scheme=scheme)
  outside = default_backend()

  def f(x, w, key, **overrides):  # the default backend: 'pallas' within lowering_for_gpu
    return crossbar_conv(x, w, m, hw, full_scale=jnp.float32(300.0), key=key, plan=plan,
                         **overrides)

  def value_and_grads(x, w, key):
    return jax.value_and_grad(lambda x, w: jnp.sum(f(x, w, key)), argnums=(0, 1))(x, w)

  def vmapped(x, w, key):  # as a sweep's entries: keys, ADC top codes and noise levels
    return jax.vmap(lambda k, top, noise: f(x, w, k, max_code=top, noise_lsb=noise))(
        jax.random.split(key, 3), jnp.asarray([15.0, 63.0, 255.0]), jnp.asarray([0.0, 0.5, 1.0]))

  for fn, kernels in ((f, {"ou_forward"}), (value_and_grads, {"ou_forward", "ou_backward"}),
                      (vmapped, {"ou_forward"})):
    key = jax.random.key(0)
    with lowering_for_gpu():
      text = jax.jit(fn).trace(x, wc, key).lower(lowering_platforms=("cuda",)).as_text()
    assert "__gpu$xla.gpu.triton" in text, fn.__name__  # compiled for the GPU, not interpreted
    assert set(re.findall(r"\bou_(?:forward|backward)\b", text)) == kernels, fn.__name__
  assert default_backend() == outside  # the platform's backend again after it


def _check_against_reference(backend, seed, encoding, mode, bits, shape, patterns):
  weight_bits, cell_bits, input_bits, dac_bits, adc_bits = bits
  hw = HardwareConfig(weight_bits=weight_bits, cell_bits=cell_bits, input_bits=input_bits,
                      dac_bits=dac_bits, adc_bits=adc_bits, sign_encoding=encoding,
                      adc_full_scale=mode)
  n, h, w, cin, cout = shape
  x, wc, mask = _problem(seed, hw, n, h, w, cin, cout, patterns=patterns)
  plan = make_ou_plan(mask, hw)
  full_scale = jnp.float32(hw.ou_full_scale * 0.3)
  r = jnp.asarray(np.random.default_rng(seed).normal(size=(n, h, w, cout)), jnp.float32)
  y_ref, g_ref = _run(hw)
  y_plan, g_plan = _run(hw, plan, backend)
  m = jnp.asarray(mask, jnp.float32)
  np.testing.assert_array_equal(y_plan(x, wc, m, full_scale), y_ref(x, wc, m, full_scale))
  for a, b in zip(g_plan(x, wc, m, full_scale, r), g_ref(x, wc, m, full_scale, r)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-4 * float(jnp.max(jnp.abs(b)) + 1))


@pytest.mark.parametrize("backend", ["numba", "xla"])
@pytest.mark.parametrize("scheme, order, hw", [
    ("pattern", "given", HardwareConfig(adc_bits=6)),
    ("packed", "given", HardwareConfig(adc_bits=6)),
    ("packed", "greedy", HardwareConfig(adc_bits=7, sign_encoding="differential")),
    ("pattern", "given", HardwareConfig(ou_rows=2, ou_cols=4, adc_bits=5)),
    ("packed", "given", HardwareConfig(ou_rows=16, ou_cols=8, adc_bits=7)),
    ("packed", "given", HardwareConfig(ou_rows=4, ou_cols=4, adc_bits=6)),
])
def test_planned_equals_mapper_simulation(backend, scheme, order, hw):
  """The `ou` model computes the mapped OUs: what the mapper simulates tile by tile, ADC on."""
  x, wc, mask = _problem(7, hw, n=2, h=5, w=4, cin=5, cout=9, patterns=scheme == "pattern")
  plan = make_ou_plan(mask, hw, scheme=scheme, filter_order=order)
  y = jax.jit(lambda x, w: crossbar_conv(x, w, jnp.asarray(mask, jnp.float32), hw, plan=plan,
                                         backend=backend))(x, wc)
  expected = simulate_layer(x.astype(np.int64), wc.astype(np.int64), mask, hw, adc_on=True, plan=plan)
  np.testing.assert_array_equal(np.asarray(y), expected)


def test_packed_ou_spans_channels():
  """A packed OU sums rows of several channels: with a narrow ADC it differs from the pattern OUs."""
  hw = HardwareConfig(adc_bits=4)
  x, wc, mask = _problem(3, hw, cin=6, cout=8)
  f = lambda plan: np.asarray(crossbar_conv(x, wc, jnp.asarray(mask, jnp.float32), hw, plan=plan))
  assert np.any(f(make_ou_plan(mask, hw, scheme="packed")) != f(make_ou_plan(mask, hw)))


@pytest.mark.parametrize("backend", ["numba", "xla"])
def test_read_noise_law_matches_reference(backend):
  """Same law as the reference path: the output error has the same mean and spread."""
  hw = HardwareConfig(read_noise_lsb=0.5, adc_full_scale="calibrated")
  x, wc, mask = _problem(11, hw, n=8, h=8, w=8, cin=6, cout=6, keep=0.9)
  m = jnp.asarray(mask, jnp.float32)
  plan = make_ou_plan(mask, hw)
  fs = jnp.float32(400.0)
  clean = crossbar_conv(x, wc, m, hw.replace(read_noise_lsb=0.0), full_scale=fs)
  keys = jax.random.split(jax.random.key(0), 8)
  ref = jax.vmap(lambda k: crossbar_conv(x, wc, m, hw, full_scale=fs, key=k))(keys) - clean
  planned = jax.jit(jax.vmap(lambda k: crossbar_conv(x, wc, m, hw, full_scale=fs, key=k, plan=plan,
                                                     backend=backend)))(keys) - clean
  assert float(jnp.std(ref)) > 0
  np.testing.assert_allclose(float(jnp.std(planned)), float(jnp.std(ref)), rtol=0.05)
  np.testing.assert_allclose(float(jnp.mean(planned)), float(jnp.mean(ref)),
                             atol=0.05 * float(jnp.std(ref)))
  assert not np.array_equal(planned[0], planned[1])  # keys differ -> draws differ
  again = crossbar_conv(x, wc, m, hw, full_scale=fs, key=keys[0], plan=plan, backend=backend)
  # Same key, same draws (eager and jitted code round the large offset term differently).
  np.testing.assert_allclose(np.asarray(again - clean), np.asarray(planned[0]), atol=0.05)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", ["pattern", "packed"])
def test_vmapped_entries_equal_one_call_each(backend, scheme):
  """A vmapped call over ADC top codes, noise levels, keys (some shared: the numba kernel then
  shares their draws) and inputs gives each entry's own call bit for bit, with and without noise."""
  hw = HardwareConfig(read_noise_lsb=0.5, adc_full_scale="calibrated")
  x, wc, mask = _problem(13, hw, n=2, h=5, w=6, cin=5, cout=7, keep=0.8)
  m, plan = jnp.asarray(mask, jnp.float32), make_ou_plan(mask, hw, scheme=scheme)
  keys = jax.random.split(jax.random.key(1), 2)
  entries = [(255, 0.5, 0), (15, 0.5, 0), (63, 0.0, 0), (15, 1.0, 1), (31, 0.25, 0), (127, 1.0, 1)]
  top = jnp.asarray([e[0] for e in entries], jnp.float32)
  noise = jnp.asarray([e[1] for e in entries], jnp.float32)
  key = jnp.stack([keys[e[2]] for e in entries])
  xs = jnp.stack([x + b % 2 for b in range(len(entries))])  # the inputs differ too

  def one(x, top, noise, key):
    return crossbar_conv(x, wc, m, hw, full_scale=jnp.float32(300.0), key=key, plan=plan,
                         backend=backend, max_code=top, noise_lsb=noise)

  batched = jax.jit(jax.vmap(one))(xs, top, noise, key)
  single = jax.jit(one)
  for b in range(len(entries)):
    np.testing.assert_array_equal(np.asarray(batched[b]),
                                  np.asarray(single(xs[b], top[b], noise[b], key[b])))
  assert not np.array_equal(np.asarray(batched[0]), np.asarray(batched[4]))  # noise levels differ


def test_vmapped_keys_with_programming_noise_equal_one_call_each():
  """With programming noise the cells differ per key: the numba kernels then take the entries one
  by one (their own cells each), still each entry's own call bit for bit."""
  hw = HardwareConfig(read_noise_lsb=0.5, prog_noise=0.3)
  x, wc, mask = _problem(17, hw, n=2, h=4, w=5, cin=4, cout=6, keep=0.8)
  m, plan = jnp.asarray(mask, jnp.float32), make_ou_plan(mask, hw)
  keys = jnp.stack([jax.random.key(0), jax.random.key(1), jax.random.key(0)])
  one = lambda key: crossbar_conv(x, wc, m, hw, key=key, plan=plan, backend="numba")
  batched = jax.jit(jax.vmap(one))(keys)
  for b in range(len(keys)):
    np.testing.assert_array_equal(np.asarray(batched[b]), np.asarray(jax.jit(one)(keys[b])))
  assert not np.array_equal(np.asarray(batched[0]), np.asarray(batched[1]))


def test_noisy_backends_draw_the_same_noise():
  hw = HardwareConfig(read_noise_lsb=1.0)
  x, wc, mask = _problem(5, hw)
  m, plan, key = jnp.asarray(mask, jnp.float32), make_ou_plan(mask, hw), jax.random.key(3)
  ys = [jax.jit(lambda x: crossbar_conv(x, wc, m, hw, key=key, plan=plan, backend=b))(x)
        for b in BACKENDS]
  for y in ys[1:]:
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ys[0]))


def test_plan_errors():
  hw = HardwareConfig()
  x, wc, mask = _problem(0, hw)
  with pytest.raises(ConfigError, match="does not fit"):
    crossbar_conv(x, wc, mask, hw, plan=make_ou_plan(mask[:, :, :2], hw))
  with pytest.raises(ConfigError, match="does not fit"):
    crossbar_conv(x, wc, mask, hw, plan=make_ou_plan(mask, hw.replace(sign_encoding="differential")))
  with pytest.raises(ConfigError, match="concrete mask"):
    jax.jit(lambda m: make_ou_plan(m, hw))(jnp.asarray(mask))
  with pytest.raises(ConfigError, match="backend"):
    crossbar_conv(x, wc, mask, hw, plan=make_ou_plan(mask, hw), backend="fortran")
