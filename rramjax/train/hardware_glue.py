"""The crossbar model in the loop: hardware state, conv builders, calibration, hardware evaluation.

  hwtune  masked training with the crossbar in the loop (`crossbar.train_fidelity`), after the
          activation and ADC scales are calibrated (`calibrate`) on `crossbar.calib_examples`
          training images;
  report  test accuracy at `crossbar.eval_fidelity` (`hardware_eval`): with device noise, N noise
          seeds vmapped, mean and std; optionally with the batch norms' statistics re-estimated
          at the evaluated crossbar first (`make_bn_stats_step`, `reestimate_bn`).

Functions take what they use (config, state, the model's eval graph, images, an evaluator); the
compiled functions they build are cached by hashable arguments (graph, fidelity, hardware), not on
a Trainer (docs/MODEL.md section 3; the planned path of the run's mapping, section 7).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rramjax import hardware as hw_lib
from rramjax.config import Config
from rramjax.hardware import planned
from rramjax.hardware.config import HardwareConfig
from rramjax.ops import conv3x3
from rramjax.train.step import (BN_RECAL_KEY, HARDWARE_EVAL_KEY, apply_masks, conv_kernels,
                                make_eval_step, stream_key)

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


def layer_scheme(mask, hw: HardwareConfig, mapper_config) -> str:
  """The mapping scheme of one layer: `mapper.scheme`, or for 'best' the mapper's choice.

  A layer for which 'best' picks the straightforward baseline (which stores its zeros) is modelled
  with its pattern tiles: the crossbar model has no stored-zero cells.
  """
  if mapper_config.scheme != "best":
    return mapper_config.scheme
  from rramjax import mapper  # pylint: disable=g-import-not-at-top
  best = mapper.map_layer(mask, hw, schemes=("best",), filter_order=mapper_config.filter_order,
                          objective=mapper_config.objective,
                          cost_model=mapper_config.cost_model())["best"]
  return best["chosen"] if best["chosen"] != "baseline" else "pattern"


_PLANS: dict = {}


def ou_plans(config: Config, masks, hw: HardwareConfig | None = None):
  """Per conv layer, the `OuPlan` the 'ou' fidelity computes: the tiles of the run's mapping
  (`mapper.scheme`, `mapper.filter_order`); None for `crossbar.ou_path='reference'`.

  Built once per set of masks (cached by their content), outside any jit: the masks are fixed
  while the crossbar is in the loop.
  """
  if config.crossbar.ou_path != "planned":
    return None
  hw = hw or config.hardware
  masks = [np.asarray(m) for m in masks]
  digest = hashlib.sha1(b"".join(m.astype(bool).tobytes() + str(m.shape).encode() for m in masks))
  # 'best' picks each layer's scheme by its cost, which reads every hardware figure (the ADC's
  # bits and energy, the array size): then the whole config is part of the key.
  best = hw if config.mapper.scheme == "best" else None
  key = (digest.hexdigest(), hw.ou_rows, hw.ou_cols, hw.columns_per_weight, config.mapper, best)
  if key not in _PLANS:
    if len(_PLANS) > 32:
      _PLANS.clear()
    _PLANS[key] = tuple(
        hw_lib.make_ou_plan(m, hw, scheme=layer_scheme(m, hw, config.mapper),
                            filter_order=config.mapper.filter_order) for m in masks)
  return _PLANS[key]


def conv_builder(fidelity: str, hw: HardwareConfig, plans=None, backend: str | None = None):
  """`(masks, hw_state, key) -> conv_fn(x, kernel, layer)` at one fidelity (see `step.ConvBuilder`).

  `plans` (from `ou_plans`) make 'ou' compute the mapping's OUs only (`crossbar_conv(plan=...)`).
  """

  def build(masks, hw_state, key):
    conv = hw_lib.make_conv_fn(fidelity, hw, hw_state, key, plans=plans, backend=backend)
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


def calibrate(config: Config, state: dict, graphdef, images, hw: HardwareConfig | None = None,
              plans=None) -> dict:
  """Sets activation clipping levels (and the ADC full scale when not 'max') from data.

  Args:
    config: the run's config (`crossbar.act_percentile`).
    state: the training state.
    graphdef: the model's graph in evaluation mode.
    images: the calibration batch, as the model takes it.
    hw: the hardware (default `config.hardware`).
    plans: the layers' `OuPlan`s (`ou_plans`): the ADC full scale then follows the sums of the
      mapping's OUs.

  Returns:
    The state with `hw_state` set and `hw_calibrated` 1.
  """
  hw = hw or config.hardware
  inputs = _input_collector(graphdef)(state["params"], state["batch_stats"], state["masks"], images)
  hw_state = hw_lib.calibrate_act_scales(state["hw_state"], inputs,
                                         percentile=config.crossbar.act_percentile)
  if hw.adc_full_scale != "max":
    kernels = [k * m for k, m in zip(conv_kernels(state["params"]), state["masks"])]
    hw_state = hw_lib.calibrate_adc_full_scale(hw_state, inputs, kernels, state["masks"], hw,
                                               plans=plans, backend=config.crossbar.backend)
  return {**state, "hw_state": hw_state, "hw_calibrated": jnp.ones((), jnp.int32)}


def one_device(config: Config, fidelity: str) -> bool:
  """Whether work at `fidelity` must run on one device: the planned `ou` path's numba kernels (host
  callbacks) cannot run on a mesh of several CPU devices (`rramjax.hardware.planned`)."""
  return (fidelity == "ou" and config.crossbar.ou_path == "planned"
          and planned.needs_one_device(config.crossbar.backend))


def has_noise(hw: HardwareConfig) -> bool:
  """Whether the crossbar model draws random device effects (read noise, or programmed cells')."""
  return bool(hw.read_noise_lsb) or hw_lib.has_device_faults(hw)


@functools.lru_cache(maxsize=16)
def _seeds_eval_step(graphdef, fidelity: str, hw: HardwareConfig, plans, backend):
  """The eval step at one fidelity, vmapped over a batch of noise keys and jitted (cached)."""
  step = make_eval_step(graphdef, conv_builder(fidelity, hw, plans, backend))
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
  plans = ou_plans(config, state["masks"], hw) if noisy else None
  seeds = (seeds or config.crossbar.eval_seeds) if has_noise(hw) and noisy else 1
  keys = jax.random.split(stream_key(state, HARDWARE_EVAL_KEY), seeds)
  limit = limit if limit is not None else config.crossbar.eval_limit
  step = _seeds_eval_step(graphdef, fidelity, hw, plans, config.crossbar.backend)
  acc, loss, examples = evaluate(step, state, keys, limit)
  return {"model": model, "fidelity": fidelity, "read_noise_lsb": hw.read_noise_lsb if noisy else 0.0,
          "prog_noise": hw.prog_noise if noisy else 0.0, "seeds": seeds, "examples": examples,
          "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
          "accuracy_per_seed": [float(a) for a in np.asarray(acc)], "loss_mean": float(loss.mean())}


def make_bn_stats_step(graph_train, build_conv):
  """A jitted `(state, images, key) -> batch_stats`: every batch norm's statistics of one batch.

  The model runs in training mode with `build_conv(masks, hw_state, key)`'s convolutions (e.g.
  `conv_builder('ou', hw, plans)`: the crossbar with its calibration and read noise) and each
  batch norm's momentum set to 0, so that its running mean and (biased) variance become this
  batch's. No gradient is taken; the state is not changed.
  """

  def batch_stats(state, images, key):
    model = nnx.merge(graph_train, apply_masks(state["params"], state["masks"]),
                      state["batch_stats"])
    for _, module in nnx.iter_modules(model):
      if isinstance(module, nnx.BatchNorm):
        module.momentum = 0.0  # the running statistics become this batch's
    model(images, build_conv(state["masks"], state["hw_state"], key))
    return nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))

  return jax.jit(batch_stats)


def reestimate_bn(state: dict, stats_step, batches, count: int) -> dict:
  """The state with its batch-norm statistics re-estimated (docs/MODEL.md section 9).

  Each batch norm's mean and variance become the plain mean, over `count` batches of `batches`
  (images as the model takes them), of each batch's statistics from `stats_step`
  (`make_bn_stats_step`), batch i with the key `fold_in(stream_key(state, BN_RECAL_KEY), i)`.
  Weights, masks and hardware state stay the state's.

  Raises:
    ValueError: `count` is not a positive integer, or `batches` holds fewer than `count`.
  """
  if isinstance(count, bool) or not isinstance(count, int) or count < 1:
    raise ValueError(f"batch-norm re-estimation: the number of batches must be a positive "
                     f"integer, got {count!r}.")
  key = stream_key(state, BN_RECAL_KEY)
  total, seen = None, 0
  for i, images in enumerate(itertools.islice(batches, count)):
    stats = stats_step(state, images, jax.random.fold_in(key, i))
    total = stats if total is None else jax.tree_util.tree_map(jnp.add, total, stats)
    seen += 1
  if seen < count:
    raise ValueError(f"batch-norm re-estimation: {count} batches asked for, {seen} available.")
  return {**state, "batch_stats": jax.tree_util.tree_map(lambda t: t / count, total)}
