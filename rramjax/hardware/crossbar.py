"""The `ou` fidelity: a bit-exact, differentiable model of a 3x3 conv layer on RRAM crossbars.

Integer-domain contract (shared with the mapper's numpy functional simulator, docs/MODEL.md
section 3):
  * inputs `x_codes`: NHWC, unsigned integers in [0, 2^input_bits - 1];
  * weights `w_codes`: HWIO (3x3), signed integers in [-(2^(weight_bits-1) - 1), 2^(weight_bits-1) - 1];
  * `mask`: HWIO, nonzero = the position is a crossbar row (the kernel's pattern);
  * conv 3x3, stride 1, SAME zero padding.
Offset encoding stores `u = w + 2^(b-1)` at masked positions only, LSB-first in cells
`cell_j(u) = (u >> j*cell_bits) & (2^cell_bits - 1)`; inputs enter LSB-first in DAC slices
`slice_s(x) = (x >> s*dac_bits) & (2^dac_bits - 1)`. The OU partial sum of (pixel, cin, cout,
cell j, slice s) is `P = sum_{taps t in pattern(cin, cout)} slice_s(x[pixel + t, cin]) *
cell_j(u[t, cin, cout])`. The ADC digitises each P:

    code = clip(floor((P + n) / LSB + 0.5), 0, hw.adc_max_code),   n ~ N(0, (read_noise_lsb*LSB)^2)
                                                                   (`faults.fast_normal` draws),
    d = code * LSB,

with `LSB = hw.adc_lsb` ('max' full scale) or `full_scale / hw.adc_max_code` (calibrated or
learned); `hw.adc_max_code = 2^adc_bits - 1`. The law itself (`quant.adc_code`, `adc_clip`,
`adc_vjp`) is shared by `adc_convert` and this path's chunked backward. The output is the
shift-and-add of the digitised sums minus the exact digital offset:

    y[pixel, cout] = sum_{cin, j, s} d * 2^(j*cell_bits) * 2^(s*dac_bits)
                     - 2^(b-1) * sum_cin sum_{t in pattern(cin, cout)} x[pixel + t, cin].

A kernel whose mask is all zero has no OU: it adds nothing (no noise either). 'differential'
encoding stores |w| of positive and of negative weights in separate cell columns, each
digitised, subtracted, with no offset. With the ADC wide enough (adc_bits >= bits of the largest
sum, LSB 1) and no noise, `y == conv(x_codes, w_codes * mask)` exactly in integers.

Gradients (straight-through, docs/MODEL.md section 3): the ADC passes the gradient where the
unclipped code lies in [0, hw.adc_max_code] and blocks it outside; the bit slicing is straight-through
with weights `d slice_s / d x = 2^(-s*dac_bits) / S` and `d cell_j / d u = 2^(-j*cell_bits) / J`,
so that without clipping `dy/dx` and `dy/dw` are exactly those of the integer conv. The learned
full scale gets the PACT gradient: `d d / d full_scale = 1` where the sum clips at the top,
0 elsewhere.

Memory and speed: the layer runs as a `lax.scan` over chunks of input channels. For a chunk of
k channels, the 9-tap patches of every slice (k, N*H*W*S, 9) times the channel's cell matrix
(k, 9, Cout*J) give all its OU sums in one batched matmul; the ADC and the shift-add fuse into
one reduction. The backward pass (`jax.custom_vjp`) recomputes each chunk's sums (and its noise,
from the same key) instead of storing them, so memory is bounded by one chunk in both passes.

Precision: slices, cells and codes are small integers held in float32; the OU matmul is exact
under every XLA precision (bf16 and TF32 hold integers up to 2^8 and 2^11 exactly, and products
accumulate in float32), and the shift-and-add runs in int32. The output is float32, so it is
the exact integer while |y| < 2^24 and otherwise rounded once (relative 6e-8). With a
non-power-of-two LSB (calibrated/learned full scale) an integer sum can sit exactly on a rounding
tie, where `sum / LSB` in float decides the code: another implementation may differ by one code
there.

A kernel's OU is all of its pattern's rows (<= 9), as the mapper's pattern scheme has it when
`ou_rows >= 9`: its sums reach `hw.kernel_full_scale` (`max_ou_sum`, the calibration histogram's
range), while the 'max' ADC step follows `hw.ou_full_scale`, a full OU of `ou_rows` rows (the
same for the paper's 9). The planned path (`plan=`) computes the mapping's OUs instead
(docs/MODEL.md section 7).

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (OU-based mapping, ADC/DAC parameters).
  Shafiee et al., "ISAAC: A Convolutional Neural Network Accelerator with In-Situ Analog
  Arithmetic in Crossbars", ISCA 2016 (bit-sliced inputs and weights, shift-and-add).
  Choi et al., "PACT", arXiv:1805.06085 (gradient of a learned clipping level).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.hardware import planned
from rramjax.hardware.config import HardwareConfig
from rramjax.hardware.faults import fast_normal, has_device_faults, program_cells, read_noise
from rramjax.hardware.quant import adc_clip, adc_code, adc_vjp
from rramjax.ops import conv3x3

sg = jax.lax.stop_gradient

# Elements of one chunk's OU-sum tensor (k, N*H*W*S, Cout*J): 2^24 float32 = 64 MiB; the
# backward pass holds about four such tensors at once.
DEFAULT_CHUNK_ELEMENTS = 2**24


# ----------------------------------------------------------------------------------------------
# Bit slicing (straight-through).
# ----------------------------------------------------------------------------------------------

def _bit_slices(v: jax.Array, count: int, bits: int) -> jax.Array:
  """LSB-first slices of non-negative integer-valued `v`, stacked on a new last axis.

  Forward `(v >> j*bits) & (2^bits - 1)`; backward `d slice_j / d v = 2^(-j*bits) / count`,
  so that `sum_j 2^(j*bits) * slice_j` has gradient 1.
  """
  vi = sg(v).astype(jnp.int32)
  delta = v - sg(v)
  slices = [((vi >> (j * bits)) & (2**bits - 1)).astype(v.dtype) + delta * (2.0**(-j * bits) / count)
            for j in range(count)]
  return jnp.stack(slices, axis=-1)


def input_slices(x_codes: jax.Array, hw: HardwareConfig) -> jax.Array:
  """DAC slices of input codes, LSB-first: `(..., S)`, `slice_s = (x >> s*dac_bits) & (2^dac_bits-1)`.

  Args:
    x_codes: unsigned integer-valued float codes < 2^input_bits.
    hw: hardware config (input_bits, dac_bits).

  Returns:
    Float slices with a trailing axis of size `hw.input_slices`, straight-through gradient.
  """
  return _bit_slices(x_codes, hw.input_slices, hw.dac_bits)


def weight_cells(w_codes: jax.Array, mask: jax.Array,
                 hw: HardwareConfig) -> tuple[jax.Array, tuple[int, ...]]:
  """Cell levels of signed weight codes, LSB-first on a new last axis, and each cell's weight.

  Offset: `u = w + 2^(b-1)` where mask, 0 elsewhere; cells `(u >> j*cell_bits) & (2^cell_bits-1)`,
  weights `2^(j*cell_bits)`. Differential: cells of `w` where `w >= 0` then of `-w` where
  `w < 0`, weights `+2^(j*cell_bits)` then `-2^(j*cell_bits)` (a zero weight routes its
  straight-through gradient to the positive column).

  Args:
    w_codes: integer-valued float codes (any shape, usually HWIO).
    mask: same shape, nonzero = stored.
    hw: hardware config (weight_bits, cell_bits, sign_encoding).

  Returns:
    (cells, cell_weights): float cells `(..., J)` with J = hw.columns_per_weight, and a tuple of
    J Python ints.
  """
  stored = mask != 0
  count, bits = hw.cells_per_weight, hw.cell_bits
  place = tuple(2 ** (j * bits) for j in range(count))
  if hw.sign_encoding == "offset":
    u = jnp.where(stored, w_codes + hw.weight_offset, 0.0)
    return _bit_slices(u, count, bits), place
  pos = jnp.where(stored & (w_codes >= 0), w_codes, 0.0)
  neg = jnp.where(stored & (w_codes < 0), -w_codes, 0.0)
  cells = jnp.concatenate([_bit_slices(pos, count, bits), _bit_slices(neg, count, bits)], axis=-1)
  return cells, place + tuple(-p for p in place)


# ----------------------------------------------------------------------------------------------
# The ADC.
# ----------------------------------------------------------------------------------------------

def adc_lsb(hw: HardwareConfig, full_scale=None):
  """ADC step: `hw.adc_lsb` (a Python int) for the 'max' full scale, else `full_scale / hw.adc_max_code`.

  The division is the correctly rounded float32 one: XLA turns a division by a compile-time
  constant into a product with its reciprocal (1 ulp off), which would move the codes of the sums
  that sit on a rounding tie, and make the step depend on whether the ADC's bits are a constant
  or an array (a design-space sweep traces them).
  """
  if full_scale is None:
    return hw.adc_lsb
  top = jax.lax.optimization_barrier(jnp.float32(hw.adc_max_code))
  return jnp.asarray(full_scale, jnp.float32) / top


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _adc(sums, lsb, max_code):
  return adc_clip(adc_code(sums, lsb), max_code) * lsb


def _adc_fwd(sums, lsb, max_code):
  code = adc_code(sums, lsb)
  return adc_clip(code, max_code) * lsb, (code, lsb)


def _adc_bwd(max_code, res, g):
  code, lsb = res
  g_sums, g_lsb = adc_vjp(code, max_code, g)
  return g_sums, jnp.reshape(g_lsb, jnp.shape(lsb)).astype(lsb.dtype)


_adc.defvjp(_adc_fwd, _adc_bwd)


def adc_convert(sums: jax.Array, hw: HardwareConfig, full_scale=None,
                key: jax.Array | None = None) -> jax.Array:
  """Digitises analog OU sums: read noise, round half up, clip to `hw.adc_levels` levels.

  `d = LSB * clip(floor((sums + n)/LSB + 0.5), 0, hw.adc_max_code)`, `n ~ N(0, (read_noise_lsb *
  LSB)^2)` when a key is given. Gradient (custom_vjp, `quant.adc_vjp`): `dd/dsums = 1` where the
  unclipped code is in `[0, hw.adc_max_code]`, else 0; `dd/dfull_scale = 1` where it is above
  (PACT), else 0.

  Args:
    sums: analog OU sums (any shape).
    hw: hardware config (adc_bits, adc_lsb, read_noise_lsb).
    full_scale: None for the 'max' ADC, else a positive scalar (calibrated or learned).
    key: optional key for read noise.

  Returns:
    Digital values `d`, shaped like sums.

  Example:
    >>> import jax.numpy as jnp
    >>> hw = HardwareConfig()  # the 'max' ADC: LSB 8, codes 0..255
    >>> adc_convert(jnp.asarray([3.0, 4.0, 100.0, 5000.0]), hw)  # half up; 5000 clips at 255 * 8
    Array([   0.,    8.,  104., 2040.], dtype=float32)
  """
  lsb = jnp.asarray(adc_lsb(hw, full_scale), jnp.float32)
  if key is not None and hw.read_noise_lsb > 0:
    sums = sums + read_noise(key, sums.shape, lsb, hw)
  return _adc(sums, lsb, hw.adc_max_code)


# ----------------------------------------------------------------------------------------------
# The OU layer: chunked over input channels, custom backward.
# ----------------------------------------------------------------------------------------------

class _OuSpec(NamedTuple):
  """Static description of one OU layer evaluation (hashable: a custom_vjp nondiff argument)."""
  place: tuple[tuple[int, ...], ...]   # (S, J) weight of each slice x cell: 2^(s*dac) * cell weight
  max_code: int
  noise_lsb: float                    # read noise std in LSB; 0 = off
  chunk: int                          # input channels per scan step


def _chunked_inputs(x_slices, cells, present, chunk):
  """Channel-major, zero-padded chunks: x (C, k, N, H+2, W+2, S), cells (C, k, 9, Q), present (C, k, Q)."""
  n, h, w, cin, s = x_slices.shape
  q = cells.shape[-2] * cells.shape[-1]
  pad = -cin % chunk
  xt = jnp.pad(jnp.transpose(x_slices, (3, 0, 1, 2, 4)), ((0, pad), (0, 0), (1, 1), (1, 1), (0, 0)))
  ct = jnp.pad(jnp.transpose(cells.reshape(9, cin, q), (1, 0, 2)), ((0, pad), (0, 0), (0, 0)))
  pq = jnp.pad(jnp.repeat(present, cells.shape[-1], axis=-1), ((0, pad), (0, 0)))
  nc = (cin + pad) // chunk
  return (xt.reshape(nc, chunk, n, h + 2, w + 2, s), ct.reshape(nc, chunk, 9, q),
          pq.reshape(nc, chunk, q))


def _patches(xc, h, w):
  """9-tap patches (k, N*H*W*S, 9) of padded chunk (k, N, H+2, W+2, S); tap i = 3*kh + kw."""
  taps = [xc[:, :, i:i + h, j:j + w, :] for i in range(3) for j in range(3)]
  return jnp.stack(taps, axis=-1).reshape(xc.shape[0], -1, 9)


def _unpatch(gp, shape):
  """Transpose of `_patches`: (k, N*H*W*S, 9) -> (k, N, H+2, W+2, S)."""
  k, n, hp, wp, s = shape
  h, w = hp - 2, wp - 2
  gp = gp.reshape(k, n, h, w, s, 9)
  return sum(jnp.pad(gp[..., 3 * i + j], ((0, 0), (0, 0), (i, 2 - i), (j, 2 - j), (0, 0)))
             for i in range(3) for j in range(3))


def _chunk_codes(spec, xc, cc, lsb, key, idx, h, w):
  """Patches and unclipped ADC codes (k, M, Q) of one chunk; same noise in forward and backward."""
  patches = _patches(xc, h, w)
  sums = jnp.einsum("kmi,kiq->kmq", patches, cc, preferred_element_type=jnp.float32)
  if spec.noise_lsb > 0:
    noise = fast_normal(jax.random.fold_in(key, idx), sums.shape)
    sums = sums + (spec.noise_lsb * lsb) * noise
  return patches, adc_code(sums, lsb)


def _place_grid(spec, cout):
  """Slice x cell weights broadcast to (1, 1, S, Cout, J), int32."""
  place = np.asarray(spec.place, np.int32)
  return jnp.asarray(place[None, None, :, None, :]), place.shape


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _ou_accumulate(spec, x_slices, cells, present, lsb, key):
  """`sum_{cin, s, j} d * place[s, j]` of every OU (N, H, W, Cout): the crossbar before offset."""
  n, h, w, _, _ = x_slices.shape
  cout = cells.shape[3]
  xs, cs, ps = _chunked_inputs(x_slices, cells, present, spec.chunk)
  place, (s, j) = _place_grid(spec, cout)

  def body(acc, inp):
    xc, cc, pc, idx = inp
    _, code = _chunk_codes(spec, xc, cc, lsb, key, idx, h, w)
    code = adc_clip(code, spec.max_code) * pc[:, None, :]
    code = code.astype(jnp.int32).reshape(code.shape[0], n * h * w, s, cout, j)
    # Integer shift-and-add: exact however many channels are summed (float32 stops at 2^24).
    return acc + jnp.sum(code * place, axis=(0, 2, 4)), None

  acc0 = jnp.zeros((n * h * w, cout), jnp.int32)
  acc, _ = jax.lax.scan(body, acc0, (xs, cs, ps, jnp.arange(xs.shape[0])))
  return (acc.astype(jnp.float32) * lsb).reshape(n, h, w, cout)


def _ou_accumulate_fwd(spec, x_slices, cells, present, lsb, key):
  y = _ou_accumulate(spec, x_slices, cells, present, lsb, key)
  return y, (x_slices, cells, present, lsb, key)


def _ou_accumulate_bwd(spec, res, g):
  x_slices, cells, present, lsb, key = res
  n, h, w, cin, s_count = x_slices.shape
  cout, j_count = cells.shape[3], cells.shape[4]
  xs, cs, ps = _chunked_inputs(x_slices, cells, present, spec.chunk)
  place, _ = _place_grid(spec, cout)
  g_place = g.reshape(1, n * h * w, 1, cout, 1) * place.astype(jnp.float32)

  def body(g_lsb, inp):
    xc, cc, pc, idx = inp
    k = xc.shape[0]
    patches, code = _chunk_codes(spec, xc, cc, lsb, key, idx, h, w)
    code = code.reshape(k, n * h * w, s_count, cout, j_count)
    live = pc.reshape(k, 1, 1, cout, j_count) > 0
    g_sums, g_lsb_chunk = adc_vjp(code, spec.max_code, g_place, live)
    g_sums = g_sums.reshape(k, -1, cout * j_count)
    g_lsb = g_lsb + g_lsb_chunk
    g_x = _unpatch(jnp.einsum("kmq,kiq->kmi", g_sums, cc), xc.shape)
    g_c = jnp.einsum("kmi,kmq->kiq", patches, g_sums)
    return g_lsb, (g_x, g_c)

  g_lsb, (g_x, g_c) = jax.lax.scan(body, jnp.zeros((), jnp.float32),
                                   (xs, cs, ps, jnp.arange(xs.shape[0])))
  g_x = g_x.reshape(-1, n, h + 2, w + 2, s_count)[:cin, :, 1:h + 1, 1:w + 1, :]
  g_x = jnp.transpose(g_x, (1, 2, 3, 0, 4))
  g_c = jnp.transpose(g_c.reshape(-1, 9, cout * j_count)[:cin], (1, 0, 2))
  g_c = g_c.reshape(cells.shape)
  return g_x, g_c, None, jnp.reshape(g_lsb, jnp.shape(lsb)).astype(lsb.dtype), None


_ou_accumulate.defvjp(_ou_accumulate_fwd, _ou_accumulate_bwd)


def _chunk_size(x_shape, cout, hw, chunk_elements):
  n, h, w, cin = x_shape
  per_channel = n * h * w * hw.input_slices * cout * hw.columns_per_weight
  return int(max(1, min(cin, chunk_elements // max(per_channel, 1))))


def integer_conv(x_codes: jax.Array, w_codes: jax.Array, mask: jax.Array) -> jax.Array:
  """Reference `conv(x_codes, w_codes * mask)` (3x3, SAME): what a wide, noiseless ADC gives."""
  return conv3x3(x_codes, jnp.where(mask != 0, w_codes, 0.0))


def crossbar_conv(x_codes: jax.Array, w_codes: jax.Array, mask: jax.Array, hw: HardwareConfig, *,
                  full_scale=None, key: jax.Array | None = None,
                  chunk_elements: int = DEFAULT_CHUNK_ELEMENTS, plan=None,
                  backend: str | None = None, max_code=None, noise_lsb=None) -> jax.Array:
  """Bit-exact OU crossbar conv (the `ou` fidelity) in the integer domain; see the module doc.

  `y = sum_{cin,j,s} ADC(P[pixel,cin,cout,j,s]) * 2^(j*cell_bits + s*dac_bits) - offset`.

  Args:
    x_codes: (N, H, W, Cin) unsigned integer-valued float codes < 2^input_bits.
    w_codes: (3, 3, Cin, Cout) signed integer-valued float codes, |w| <= 2^(weight_bits-1) - 1.
    mask: (3, 3, Cin, Cout), nonzero = crossbar row (pattern); all-zero kernels have no OU.
    hw: hardware config.
    full_scale: None for the 'max' ADC (LSB = hw.adc_lsb); else a positive scalar, the ADC's
      largest value (LSB = full_scale / (2^adc_bits - 1)), differentiable (PACT gradient).
    key: optional key for device effects: cells are programmed with `fold_in(key, 0)`
      (`program_cells`), read noise is drawn from `fold_in(key, 1)`. None = noiseless.
    chunk_elements: memory bound, in elements, of one chunk's OU-sum tensor (reference path).
    plan: an `OuPlan` from `make_ou_plan(mask, hw)`: compute only the plan's OUs (the planned
      path, `rramjax.hardware.planned`); None runs the reference path over every kernel.
    backend: the planned path's backend ('numba', 'pallas', 'xla'; None: the platform's).
    max_code, noise_lsb: traced overrides (planned path only) of the ADC's top code
      (`hw.adc_max_code`; with a full scale, LSB = full_scale / max_code) and of the read-noise
      std in LSB (`hw.read_noise_lsb`; drawn when a key is given): what a design-space sweep
      varies inside one compiled function.

  Returns:
    (N, H, W, Cout) float32 outputs, integer-valued whenever LSB is an integer.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(32.0).reshape(1, 4, 4, 2) * 8              # 8-bit input codes
    >>> w = jnp.full((3, 3, 2, 3), -127.0).at[..., 1].set(100.0)  # 8-bit weight codes
    >>> mask = jnp.zeros_like(w).at[1].set(1)                     # every kernel: its middle row
    >>> exact = integer_conv(x, w, mask)
    >>> bool((crossbar_conv(x, w, mask, HardwareConfig(adc_bits=11)) == exact).all())  # wide ADC
    True
    >>> crossbar_conv(x, w, mask, HardwareConfig())[0, 0, :, 1]  # the paper's 8-bit ADC: LSB 8
    Array([ 5952., 11104., 23648., 18752.], dtype=float32)
    >>> exact[0, 0, :, 1]
    Array([ 4800., 12000., 21600., 17600.], dtype=float32)
  """
  if plan is None and (max_code is not None or noise_lsb is not None):
    raise ConfigError("crossbar_conv: max_code and noise_lsb overrides need the planned path "
                      "(plan=make_ou_plan(mask, hw)).")
  stored = mask != 0
  present = jnp.any(stored, axis=(0, 1)).astype(jnp.float32)
  cells, cell_place = weight_cells(w_codes.astype(jnp.float32), stored, hw)
  if key is not None and has_device_faults(hw):
    cells = program_cells(cells, hw, jax.random.fold_in(key, 0), stored=stored[..., None])
  noisy = key is not None and hw.read_noise_lsb > 0
  noise_key = jax.random.fold_in(key, 1) if noisy else jax.random.key(0)
  spec = _OuSpec(
      place=tuple(tuple(2 ** (s * hw.dac_bits) * c for c in cell_place)
                  for s in range(hw.input_slices)),
      max_code=hw.adc_max_code, noise_lsb=float(hw.read_noise_lsb) if noisy else 0.0,
      chunk=_chunk_size(x_codes.shape, w_codes.shape[-1], hw, chunk_elements))
  lsb = jnp.asarray(adc_lsb(hw, full_scale), jnp.float32)
  if max_code is not None and full_scale is not None:  # the step of the overriding resolution
    lsb = jnp.asarray(full_scale, jnp.float32) / jnp.asarray(max_code, jnp.float32)
  x_codes = x_codes.astype(jnp.float32)
  if plan is not None:
    planned.check_plan(plan, w_codes.shape, hw)
    noise = spec.noise_lsb if noise_lsb is None else noise_lsb
    noise_on = noisy or (key is not None and noise_lsb is not None)
    y = planned.planned_accumulate(x_codes, cells, cell_place, lsb,
                                   jax.random.fold_in(key, 1) if noise_on else None, plan, hw,
                                   noise, backend, max_code)
  else:
    y = _ou_accumulate(spec, input_slices(x_codes, hw), cells, present, lsb, noise_key)
  if hw.sign_encoding == "offset":
    y = y - hw.weight_offset * conv3x3(x_codes, stored.astype(jnp.float32))
  return y


def max_ou_sum(hw: HardwareConfig) -> int:
  """Largest noiseless OU sum of the reference path (one kernel, <= 9 rows): `hw.kernel_full_scale`."""
  return hw.kernel_full_scale


def ou_sum_histogram(x_codes: jax.Array, w_codes: jax.Array, mask: jax.Array, hw: HardwareConfig, *,
                     chunk_elements: int = DEFAULT_CHUNK_ELEMENTS, plan=None,
                     backend: str | None = None) -> jax.Array:
  """Counts of each noiseless OU sum value over every OU of a layer (for ADC calibration).

  Args:
    x_codes, w_codes, mask, hw: as for `crossbar_conv`.
    chunk_elements: memory bound of one chunk (reference path).
    plan, backend: as for `crossbar_conv`: with a plan, the sums of the plan's OUs
      (`planned.planned_histogram`, length `planned.plan_max_sum(plan, hw) + 1`).

  Returns:
    int32 counts, shape (max_ou_sum(hw) + 1,): entry v = number of (pixel, cin, cout, cell,
    slice) sums equal to v, over kernels that exist.
  """
  stored = mask != 0
  if plan is not None:
    planned.check_plan(plan, w_codes.shape, hw)
    cells, _ = weight_cells(w_codes.astype(jnp.float32), stored, hw)
    return planned.planned_histogram(x_codes.astype(jnp.float32), cells, plan, hw, backend)
  present = jnp.any(stored, axis=(0, 1)).astype(jnp.float32)
  cells, _ = weight_cells(w_codes.astype(jnp.float32), stored, hw)
  x_slices = input_slices(x_codes.astype(jnp.float32), hw)
  n, h, w, _, _ = x_slices.shape
  chunk = _chunk_size(x_codes.shape, w_codes.shape[-1], hw, chunk_elements)
  xs, cs, ps = _chunked_inputs(sg(x_slices), sg(cells), present, chunk)
  length = max_ou_sum(hw) + 1

  def body(counts, inp):
    xc, cc, pc = inp
    sums = jnp.einsum("kmi,kiq->kmq", _patches(xc, h, w), cc, preferred_element_type=jnp.float32)
    weights = jnp.broadcast_to(pc[:, None, :], sums.shape).astype(jnp.int32)
    return counts + jnp.bincount(sums.astype(jnp.int32).ravel(), weights.ravel(), length=length), None

  counts, _ = jax.lax.scan(body, jnp.zeros((length,), jnp.int32), (xs, cs, ps))
  return counts


def histogram_percentile(counts: jax.Array, percentile) -> jax.Array:
  """Smallest value v with `P(sum <= v) >= percentile/100` from `ou_sum_histogram` counts."""
  cdf = jnp.cumsum(counts.astype(jnp.float32))
  target = cdf[-1] * (jnp.asarray(percentile, jnp.float32) / 100.0)
  return jnp.argmax(cdf >= target).astype(jnp.float32)


def sums_needed_bits(hw: HardwareConfig) -> int:
  """ADC bits that make the 'max' ADC exact (LSB 1) for every kernel: `hw.kernel_sum_bits`."""
  return hw.kernel_sum_bits
