"""Quantizers with straight-through gradients: weights (signed), activations (unsigned), the ADC.

Every quantizer here returns exact integer codes in the forward pass (the code values are
bit-exact: the straight-through term is added as `x - stop_gradient(x)`, which is exactly 0),
and a straight-through gradient in the backward pass. The ADC's law (`adc_code`, `adc_clip`,
`adc_vjp`) is the one both `crossbar.adc_convert` and the reference `ou` path are built from
(docs/MODEL.md section 3).

References:
  Bengio, Leonard, Courville, "Estimating or Propagating Gradients Through Stochastic Neurons
  for Conditional Computation", arXiv:1308.3432 (straight-through estimator).
  Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018, arXiv:1712.05877 (symmetric per-tensor fake quantization).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

sg = jax.lax.stop_gradient


def round_half_up(x: jax.Array) -> jax.Array:
  """Round half up, `floor(x + 0.5)`, the ADC's and quantizers' rounding (no gradient)."""
  return jnp.floor(x + 0.5)


def round_ste(x: jax.Array) -> jax.Array:
  """Straight-through rounding: forward `floor(x + 0.5)`, backward identity.

  Written as `sg(floor(x + 0.5)) + (x - sg(x))` rather than `x + sg(r - x)`: the added term is
  exactly zero, so the forward value is the integer itself, bit for bit.

  Args:
    x: float array.

  Returns:
    `floor(x + 0.5)` with d/dx = 1.
  """
  return sg(round_half_up(x)) + (x - sg(x))


def clip_ste(x: jax.Array, lo, hi) -> jax.Array:
  """Clip to `[lo, hi]` with gradient exactly 1 inside (boundaries included) and 0 outside.

  `jnp.clip` splits the gradient 0.5/0.5 at a tie with a bound; quantizers hit the bounds
  exactly (the largest weight maps to the largest code), so the selects are written out.
  """
  lo, hi = sg(jnp.asarray(lo, x.dtype)), sg(jnp.asarray(hi, x.dtype))
  return jnp.where(x < lo, lo, jnp.where(x > hi, hi, x))


def weight_scale(w: jax.Array, bits: int) -> jax.Array:
  """Symmetric per-tensor scale `max|w| / (2^(bits-1) - 1)`, 1 for an all-zero tensor.

  A tensor whose scale would be subnormal counts as all zero (scale 1, every code 0): XLA on CPU
  flushes subnormals to zero, so without this the result would depend on the backend.
  """
  qmax = 2 ** (bits - 1) - 1
  max_abs = jnp.max(jnp.abs(w))
  scale = max_abs / qmax
  return jnp.where(scale >= jnp.finfo(scale.dtype).tiny, scale, jnp.ones_like(scale))


def quantize_weights(w: jax.Array, bits: int) -> tuple[jax.Array, jax.Array]:
  """Symmetric signed per-tensor quantization to integer codes, straight-through.

  `scale = max|w| / (2^(b-1) - 1)` (1 if w == 0), `codes = clip(floor(w/scale + 0.5),
  -(2^(b-1)-1), 2^(b-1)-1)`. The scale is held constant in the backward pass
  (`d codes / d w = 1/scale`), so `codes * scale` has the plain STE gradient 1.

  Args:
    w: float weights, any shape.
    bits: weight precision b >= 2.

  Returns:
    (codes, scale): integer-valued float codes shaped like w, and the scalar scale.
  """
  qmax = 2 ** (bits - 1) - 1
  scale = sg(weight_scale(w, bits))
  v = w / scale
  codes = sg(jnp.clip(round_half_up(v), -qmax, qmax)) + (v - sg(v))
  return codes, scale


def fake_quant_weights(w: jax.Array, bits: int) -> jax.Array:
  """`codes * scale` of `quantize_weights`: quantized weights in float, gradient 1."""
  codes, scale = quantize_weights(w, bits)
  return codes * scale


def input_step(bits: int, scale) -> jax.Array:
  """Activation step `scale / (2^bits - 1)`: codes 0 .. 2^bits - 1 span [0, scale]."""
  return jnp.asarray(scale, jnp.float32) / (2**bits - 1)


def quantize_inputs(x: jax.Array, bits: int, scale) -> tuple[jax.Array, jax.Array]:
  """Unsigned activation quantization to codes in [0, 2^b - 1], straight-through inside [0, scale].

  `step = scale / (2^b - 1)`, `codes = clip(floor(x/step + 0.5), 0, 2^b - 1)`;
  `d codes / d x = 1/step` for `0 <= x <= scale` and 0 outside (PACT-style clipping, but the
  scale itself gets no gradient: it is calibrated, not learned). First-layer pixels in [0, 1]
  use scale 1; later layers take post-ReLU activations with a calibrated scale.

  Args:
    x: float activations (any shape).
    bits: activation precision b.
    scale: positive scalar, the largest representable input.

  Returns:
    (codes, step): integer-valued float codes shaped like x, and the scalar step.

  References:
    Choi et al., "PACT: Parameterized Clipping Activation for Quantized Neural Networks",
    arXiv:1805.06085.
  """
  qmax = 2**bits - 1
  scale = sg(jnp.asarray(scale, jnp.float32))
  step = scale / qmax
  codes = jnp.clip(round_half_up(x / step), 0, qmax)
  x_in = clip_ste(x, 0.0, scale)
  return sg(codes) + (x_in - sg(x_in)) / step, step


def fake_quant_inputs(x: jax.Array, bits: int, scale) -> jax.Array:
  """`codes * step` of `quantize_inputs`: gradient 1 inside [0, scale], 0 outside."""
  codes, step = quantize_inputs(x, bits, scale)
  return codes * step


# ----------------------------------------------------------------------------------------------
# The ADC: analog OU sums to codes (docs/MODEL.md section 3).
# ----------------------------------------------------------------------------------------------

def adc_code(sums: jax.Array, lsb) -> jax.Array:
  """The ADC's unclipped code of analog sums, `floor(sums / lsb + 0.5)` (no gradient of its own).

  Callers keep it for the backward pass (`adc_vjp`), which needs where it lies, not its clip.
  """
  return round_half_up(sums / lsb)


def adc_clip(code: jax.Array, max_code) -> jax.Array:
  """The ADC's output code: `clip(code, 0, max_code)` (`max_code = hw.adc_max_code` or traced)."""
  return jnp.clip(code, 0, max_code)


def adc_vjp(code: jax.Array, max_code, g: jax.Array, live: jax.Array | None = None):
  """Straight-through gradient of `d = lsb * adc_clip(adc_code(sums, lsb), max_code)`.

  `dd/dsums = 1` where the unclipped code lies in `[0, max_code]`, else 0; `dd/dlsb = max_code`
  where it is above (the PACT gradient of the full scale `lsb * max_code`), else 0.

  Args:
    code: unclipped codes (`adc_code`).
    max_code: the ADC's top code.
    g: the cotangent of `d`, broadcastable to `code`.
    live: optional boolean mask broadcastable to `code`: False where there is no OU (no gradient).

  Returns:
    `(g_sums, g_lsb)`: the cotangent of the sums (code's broadcast shape) and a scalar.
  """
  inside = (code >= 0) & (code <= max_code)
  above = code > max_code
  if live is not None:
    inside, above = inside & live, above & live
  return jnp.where(inside, g, 0.0), max_code * jnp.sum(jnp.where(above, g, 0.0))
