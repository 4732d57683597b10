"""The crossbar model in the loop: hardware state, conv builders, calibration, hardware evaluation.

  hwtune  masked training with the crossbar in the loop (`crossbar.train_fidelity`), after the
          activation and ADC scales are calibrated (`calibrate`) on `crossbar.calib_examples`
          training images;
  report  test accuracy at `crossbar.eval_fidelity` (`hardware_eval`): with device noise, N noise
          seeds vmapped, mean and std.

Functions take what they use (config, state, the model's eval graph, images, an evaluator); the
compiled functions they build are cached by hashable arguments (graph, fidelity, hardware), not on
a Trainer (docs/MODEL.md section 3).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rramjax import hardware as hw_lib
from rramjax.config import Config
from rramjax.hardware.config import HardwareConfig
from rramjax.ops import conv3x3
from rramjax.train.step import HARDWARE_EVAL_KEY, apply_masks, conv_kernels, make_eval_step, stream_key

# `evaluate(step, state, keys, limit) -> (accuracy, loss, examples)` over the test set.
Evaluator = Callable


def init_state(config: Config, num_layers: int) -> dict:
  """The hardware entries of the training state: per-layer scales, not yet calibrated."""
  return {"hw_state": hw_lib.init_hw_state(num_layers, config.hardware),
          "hw_calibrated": jnp.zeros((), jnp.int32)}


def trainable_hw_key(config: Config) -> str | None:
  """The hardware state trained beside the weights: the ADC full scale when it is learned."""
  return "adc_full_scale" if config.hardware.adc_full_scale == "learned" else None


def trainable(state: dict, config: Config) -> dict:
  """What the optimizer updates: the weights, and the learned hardware state if any."""
  out = {"params": state["params"]}
  key = trainable_hw_key(config)
  if key:
    out["hw"] = state["hw_state"][key]
  return out


def train_fidelity(config: Config, phase: str) -> str:
  """The fidelity a phase trains at: `crossbar.train_fidelity` in hwtune, else 'ideal'."""
  return config.crossbar.train_fidelity if phase == "hwtune" else "ideal"


def conv_builder(fidelity: str, hw: HardwareConfig):
  """`(masks, hw_state, key) -> conv_fn(x, kernel, layer)` at one fidelity (see `step.ConvBuilder`)."""

  def build(masks, hw_state, key):
    conv = hw_lib.make_conv_fn(fidelity, hw, hw_state, key)
    return lambda x, kernel, layer: conv(x, kernel, masks[layer], layer)

  return build


@functools.lru_cache(maxsize=8)
def _input_collector(graphdef):
  """A jitted `(params, batch_stats, masks, images) -> [input of every conv layer]` (ideal convs)."""

  @jax.jit
  def collect(params, batch_stats, masks, images):
    inputs = []

    def record(x, kernel, layer):
      del layer
      inputs.append(x)
      return conv3x3(x, kernel)

    nnx.merge(graphdef, apply_masks(params, masks), batch_stats)(images, record)
    return inputs

  return collect


def calibrate(config: Config, state: dict, graphdef, images, hw: HardwareConfig | None = None) -> dict:
  """Sets activation clipping levels (and the ADC full scale when not 'max') from data.

  Args:
    config: the run's config (`crossbar.act_percentile`).
    state: the training state.
    graphdef: the model's graph in evaluation mode.
    images: the calibration batch, as the model takes it.
    hw: the hardware (default `config.hardware`).

  Returns:
    The state with `hw_state` set and `hw_calibrated` 1.
  """
  hw = hw or config.hardware
  inputs = _input_collector(graphdef)(state["params"], state["batch_stats"], state["masks"], images)
  hw_state = hw_lib.calibrate_act_scales(state["hw_state"], inputs,
                                         percentile=config.crossbar.act_percentile)
  if hw.adc_full_scale != "max":
    kernels = [k * m for k, m in zip(conv_kernels(state["params"]), state["masks"])]
    hw_state = hw_lib.calibrate_adc_full_scale(hw_state, inputs, kernels, state["masks"], hw)
  return {**state, "hw_state": hw_state, "hw_calibrated": jnp.ones((), jnp.int32)}


def has_noise(hw: HardwareConfig) -> bool:
  """Whether the crossbar model draws random device effects (read noise, or programmed cells')."""
  return bool(hw.read_noise_lsb) or hw_lib.has_device_faults(hw)


@functools.lru_cache(maxsize=16)
def _seeds_eval_step(graphdef, fidelity: str, hw: HardwareConfig):
  """The eval step at one fidelity, vmapped over a batch of noise keys and jitted (cached)."""
  step = make_eval_step(graphdef, conv_builder(fidelity, hw))
  return jax.jit(jax.vmap(step, in_axes=(None, None, None, None, 0)))


def hardware_eval(config: Config, state: dict, fidelity: str, *, graphdef, evaluate: Evaluator,
                  hw: HardwareConfig | None = None, seeds: int | None = None,
                  limit: int | None = None, model: str = "final") -> dict:
  """Test accuracy at one fidelity; with noise, `seeds` noise draws vmapped: mean and std.

  Args:
    config: the run's config (`crossbar.eval_seeds`, `crossbar.eval_limit`).
    state: a calibrated state when `fidelity` is not 'ideal' (see `calibrate`).
    fidelity: 'ideal', 'quant' or 'ou'.
    graphdef: the model's graph in evaluation mode.
    evaluate: runs a step over the test set (`Trainer.evaluate_with`).
    hw: the hardware (default `config.hardware`).
    seeds: noise draws (default `crossbar.eval_seeds`); 1 without device noise.
    limit: test examples (default `crossbar.eval_limit`).
    model: the row's label ('final', or 'before hwtune' for the reference model).

  Returns:
    One row of the hardware table (a JSON-able dict).
  """
  hw = hw or config.hardware
  noisy = fidelity == "ou"  # device noise exists only in the crossbar model
  seeds = (seeds or config.crossbar.eval_seeds) if has_noise(hw) and noisy else 1
  keys = jax.random.split(stream_key(state, HARDWARE_EVAL_KEY), seeds)
  limit = limit if limit is not None else config.crossbar.eval_limit
  acc, loss, examples = evaluate(_seeds_eval_step(graphdef, fidelity, hw), state, keys, limit)
  return {"model": model, "fidelity": fidelity, "read_noise_lsb": hw.read_noise_lsb if noisy else 0.0,
          "prog_noise": hw.prog_noise if noisy else 0.0, "seeds": seeds, "examples": examples,
          "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
          "accuracy_per_seed": [float(a) for a in np.asarray(acc)], "loss_mean": float(loss.mean())}
