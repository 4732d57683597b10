"""Float conv layers at each hardware fidelity, for the training loop, and their per-layer state.

`make_conv_fn(fidelity, hw, hw_state, key)` returns `conv_fn(x, kernel, mask, layer)`:
  * 'ideal': `conv(x, kernel)` (the kernel arrives masked);
  * 'quant': `conv(fq_in(x), fq_w(kernel))`, weights symmetric signed to weight_bits per tensor,
    inputs unsigned to input_bits over [0, act_scale[layer]], straight-through gradients;
  * 'ou':    `crossbar_conv(x_codes, w_codes, mask) * w_scale * x_step`: the same codes through
    the bit-exact crossbar.
Invariant (tested): with adc_bits >= `sums_needed_bits(hw)` (LSB 1, nothing clips) and no noise,
'ou' equals 'quant' to float tolerance, since then `crossbar_conv == conv(x_codes, w_codes)`.

`hw_state` layout (a pytree of float32 arrays, one entry per conv layer, L layers; a design-space
sweep may add the scalars 'adc_max_code' and 'read_noise_lsb', traced overrides of the ADC's top
code and of the read noise for the planned path):
  {'act_scale': (L,)       input clipping level; codes span [0, act_scale] (layer 0: pixels, 1),
   'adc_full_scale': (L,)  ADC full scale in OU-sum units, used when hw.adc_full_scale is
                           'calibrated' (held constant) or 'learned' (trainable, PACT gradient)}.
It starts at `init_hw_state` (full scale = the 'max' ADC's, so every mode starts identical) and
is set from data by `calibrate_act_scales` and `calibrate_adc_full_scale`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.hardware import crossbar
from rramjax.hardware.config import FIDELITIES, HardwareConfig
from rramjax.hardware.quant import (fake_quant_inputs, fake_quant_weights, quantize_inputs,
                                    quantize_weights)
from rramjax.ops import conv3x3

HwState = dict[str, jax.Array]
ConvFn = Callable[[jax.Array, jax.Array, jax.Array, int], jax.Array]


def _code_histogram(x, kernel, mask, act_scale, hw, chunk_elements, plan, backend):
  """`ou_sum_histogram` of a layer's float input and kernel, quantized as the 'ou' fidelity does."""
  x_codes, _ = quantize_inputs(x, hw.input_bits, act_scale)
  w_codes, _ = quantize_weights(kernel, hw.weight_bits)
  return crossbar.ou_sum_histogram(x_codes, w_codes, mask, hw, chunk_elements=chunk_elements,
                                   plan=plan, backend=backend)


# Calibration runs from the training loop, outside its jitted steps: one compiled quantization and
# histogram per layer shape (eager quantization compiled ~100 small XLA ops, ~15 s on a CPU).
_code_histogram_jit = jax.jit(_code_histogram,
                              static_argnames=("hw", "chunk_elements", "plan", "backend"))


def init_hw_state(num_layers: int, hw: HardwareConfig) -> HwState:
  """Per-layer hardware state before calibration: act_scale 1, ADC full scale of the 'max' ADC.

  Args:
    num_layers: number of conv layers L.
    hw: hardware config.

  Returns:
    {'act_scale': ones (L,), 'adc_full_scale': (L,) filled with hw.max_adc_full_scale}.
  """
  full_scale = float(hw.max_adc_full_scale)
  return {"act_scale": jnp.ones((num_layers,), jnp.float32),
          "adc_full_scale": jnp.full((num_layers,), full_scale, jnp.float32)}


def _layer_full_scale(hw: HardwareConfig, hw_state: HwState, layer: int):
  if hw.adc_full_scale == "max":
    return None
  full_scale = hw_state["adc_full_scale"][layer]
  if hw.adc_full_scale == "calibrated":
    return jax.lax.stop_gradient(full_scale)
  return full_scale


def _layer_key(key, layer: int):
  return None if key is None else jax.random.fold_in(key, layer)


def make_conv_fn(fidelity: str, hw: HardwareConfig, hw_state: HwState, key: jax.Array | None = None,
                 *, chunk_elements: int = crossbar.DEFAULT_CHUNK_ELEMENTS, plans=None,
                 backend: str | None = None, compute_dtype=None) -> ConvFn:
  """Returns `conv_fn(x, kernel, mask, layer) -> y` at the given fidelity.

  Args:
    fidelity: 'ideal', 'quant' or 'ou'.
    hw: hardware config.
    hw_state: per-layer state (see the module doc); may be traced (learned full scale).
    key: optional key for device effects ('ou' only); layer l uses `fold_in(key, l)`.
    chunk_elements: memory bound of the 'ou' model's chunks (see `crossbar_conv`).
    plans: per conv layer, its `OuPlan` (`make_ou_plan` of the layer's concrete mask): 'ou' then
      runs the planned path (only the mapped OUs); None runs the reference path.
    backend: the planned path's backend (None: the platform's default).
    compute_dtype: dtype of the 'ideal' and 'quant' convolutions' operands (e.g. bfloat16 on a
      GPU; products accumulate in float32); None keeps float32. The 'ou' path is exact integer
      arithmetic whatever the dtype.

  Returns:
    conv_fn taking x (N, H, W, Cin) float, kernel (3, 3, Cin, Cout) float (already masked),
    mask (3, 3, Cin, Cout) in {0, 1}, layer (a Python int), and giving (N, H, W, Cout) float32
    (3x3, stride 1, SAME, no bias).

  Raises:
    ConfigError: unknown fidelity.
  """
  if fidelity not in FIDELITIES:
    raise ConfigError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}.")

  def conv(x, kernel):
    if compute_dtype is not None:
      x, kernel = x.astype(compute_dtype), kernel.astype(compute_dtype)
    return conv3x3(x, kernel)

  def conv_fn(x, kernel, mask, layer: int):
    if fidelity == "ideal":
      return conv(x, kernel)
    act_scale = hw_state["act_scale"][layer]
    if fidelity == "quant":
      return conv(fake_quant_inputs(x, hw.input_bits, act_scale),
                  fake_quant_weights(kernel, hw.weight_bits))
    x_codes, step = quantize_inputs(x, hw.input_bits, act_scale)
    w_codes, w_scale = quantize_weights(kernel, hw.weight_bits)
    y = crossbar.crossbar_conv(x_codes, w_codes, mask, hw,
                               full_scale=_layer_full_scale(hw, hw_state, layer),
                               key=_layer_key(key, layer), chunk_elements=chunk_elements,
                               plan=None if plans is None else plans[layer], backend=backend,
                               max_code=hw_state.get("adc_max_code"),
                               noise_lsb=hw_state.get("read_noise_lsb"))
    return y * (w_scale * step)

  return conv_fn


def calibrate_act_scales(hw_state: HwState, layer_inputs: Sequence[jax.Array | None], *,
                         percentile: float = 100.0, pixel_first_layer: bool = True) -> HwState:
  """Sets each layer's input clipping level from one batch of that layer's inputs.

  `act_scale[l] = percentile(layer_inputs[l], percentile)` (the max by default, so the batch
  never clips), 1 where that is 0; layer 0 keeps scale 1 when its inputs are [0, 1] pixels.

  Args:
    hw_state: current state.
    layer_inputs: per conv layer, its input batch (N, H, W, Cin), or None to keep the scale.
    percentile: percentile of the input values, in (0, 100].
    pixel_first_layer: layer 0 takes [0, 1] pixels: scale 1, not calibrated.

  Returns:
    A new hw_state with act_scale updated.
  """
  scales = np.asarray(hw_state["act_scale"], np.float32).copy()
  for layer, x in enumerate(layer_inputs):
    if x is None or (layer == 0 and pixel_first_layer):
      continue
    value = float(jnp.percentile(jnp.asarray(x, jnp.float32), percentile))
    scales[layer] = value if value > 0 else 1.0
  if pixel_first_layer and len(scales):
    scales[0] = 1.0
  return {**hw_state, "act_scale": jnp.asarray(scales)}


def calibrate_adc_full_scale(hw_state: HwState, layer_inputs: Sequence[jax.Array | None],
                             kernels: Sequence[jax.Array | None], masks: Sequence[jax.Array | None],
                             hw: HardwareConfig, *, percentile: float | None = None,
                             chunk_elements: int = crossbar.DEFAULT_CHUNK_ELEMENTS, plans=None,
                             backend: str | None = None) -> HwState:
  """Sets each layer's ADC full scale to a percentile of its observed noiseless OU sums.

  The layer's inputs and kernel are quantized as in the 'ou' fidelity (with the current
  act_scale, so calibrate activations first), every OU sum of the batch is counted exactly
  (`ou_sum_histogram`), and `adc_full_scale[l] = max(1, percentile_p(sums))` with
  p = hw.adc_percentile by default. Sums of all existing kernels count, zeros included.

  Args:
    hw_state: current state.
    layer_inputs: per conv layer, its float input batch (N, H, W, Cin), or None to skip.
    kernels: per conv layer, the float HWIO kernel (masked).
    masks: per conv layer, the HWIO mask.
    hw: hardware config.
    percentile: overrides hw.adc_percentile.
    chunk_elements: memory bound per chunk.
    plans, backend: per layer, the `OuPlan` the 'ou' fidelity computes (see `make_conv_fn`): the
      sums counted are then those of the plan's OUs (a packed OU sums more rows than a kernel).

  Returns:
    A new hw_state with adc_full_scale updated.
  """
  p = hw.adc_percentile if percentile is None else percentile
  full_scales = np.asarray(hw_state["adc_full_scale"], np.float32).copy()
  for layer, (x, kernel, mask) in enumerate(zip(layer_inputs, kernels, masks)):
    if x is None:
      continue
    counts = _code_histogram_jit(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32),
                                 mask, hw_state["act_scale"][layer], hw, chunk_elements,
                                 None if plans is None else plans[layer], backend)
    full_scales[layer] = max(1.0, float(crossbar.histogram_percentile(counts, p)))
  return {**hw_state, "adc_full_scale": jnp.asarray(full_scales)}
