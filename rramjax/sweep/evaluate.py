"""The accuracy side of a sweep: a run's model at 'ou' over grid points, vectorised (jax).

How points share work (docs/MODEL.md section 10):
  * a *compile group* is the points whose crossbar computes the same OUs with the same codes: the
    same OU plans (OU shape, mapping scheme), cell, DAC, weight and input bits, sign encoding,
    device faults and backend (`static_hardware`, `plans_digest`). Each group compiles one
    evaluation;
  * inside a group, a point's ADC top code `2^adc_bits - 1`, its per-layer ADC full scale, its
    read-noise level and its activation clipping levels are arrays (`hw_state` entries the planned
    crossbar takes traced): the group's points, times their noise seeds, run through one
    `jax.vmap`ped evaluation, at most `VMAP_IMAGES` test images per call, its entries ordered seed
    by seed within blocks of points (`_entry_order`): the numba kernels take a call's entries at
    once and draw each read-noise value once for the entries of one seed (the noise of a seed is
    the same at every point, so points differ by their hardware, not by their draws);
  * the calibration (activation clipping levels, and the 'calibrated' ADC full scale: a percentile
    of the noiseless sums of the point's OUs over the run's calibration images) runs once per group
    and calibration setting, from the model's weights.
With `crossbar.ou_path='reference'` nothing is traced: every distinct hardware compiles alone.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.config import Config
from rramjax.errors import CheckpointError
from rramjax.hardware import planned
from rramjax.hardware.config import HardwareConfig
from rramjax.train import hardware_glue
from rramjax.train.checkpoint import Checkpointer
from rramjax.train.loop import Trainer, create_optimizer
from rramjax.train.step import HARDWARE_EVAL_KEY, make_eval_step, make_train_step, stream_key

# Test images per vmapped call (points x seeds x eval batch): bounds the memory of a call, whose
# activations are held for every point at once.
VMAP_IMAGES = 8192
# What a compiled evaluation takes as arrays, and the cost model's figures (no effect on accuracy):
# set to fixed values in a compile group's hardware.
_TRACED = {"adc_bits": 1, "read_noise_lsb": 0.0, "adc_full_scale": "calibrated",
           "adc_percentile": 100.0}
_COST_ONLY = ("e_ou_pj", "e_adc_pj", "e_dac_pj", "adc_rate_hz", "dac_rate_hz")


def static_hardware(hw: HardwareConfig) -> HardwareConfig:
  """`hw` with the traced and cost-only fields fixed: equal for points of one compile group.

  The planned crossbar then runs with a full scale given per layer (the 'calibrated' mode): a
  point of the 'max' mode passes `adc_lsb * (2^adc_bits - 1)`, whose step is exactly `adc_lsb`.
  The OU shape and the array size enter only through the OU plans (whose digest is part of the
  group's key): points whose plans are equal share a group whatever their OU and array sizes
  (with the pattern mapping, OUs of 9 and of 16 rows hold the same <= 9-row kernels).
  """
  default = HardwareConfig()
  return hw.replace(**_TRACED, **{name: getattr(default, name) for name in _COST_ONLY},
                    ou_rows=1, ou_cols=1, array_rows=1, array_cols=1)


def plans_digest(plans) -> str:
  """A digest of the OU plans' tiles ('reference' without plans): equal digests, equal OUs."""
  if plans is None:
    return "reference"
  digest = hashlib.sha1()
  for plan in plans:
    for part in (plan.tile_rows, plan.tile_cols):
      digest.update(f"{plan.scheme}{plan.cin}{plan.cout}{plan.columns_per_weight}{part.shape}".encode())
      digest.update(np.ascontiguousarray(part).tobytes())
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class PointSetup:
  """What the evaluation of one point needs: its config, OU plans, compile group and calibration.

  Attributes:
    config: the point's validated config.
    plans: its layers' `OuPlan`s (None on the reference path).
    hardware: the hardware its group compiles (`static_hardware`, or the point's own on the
      reference path).
    group: the compile group's key.
    calibration: the calibration's key.
  """
  config: Config
  plans: tuple | None
  hardware: HardwareConfig
  group: tuple
  calibration: tuple

  @property
  def traced(self) -> bool:
    return self.plans is not None

  @property
  def noisy(self) -> bool:
    return hardware_glue.has_noise(self.config.hardware)


def restore_newest(run_dir, template) -> tuple[dict, int | None]:
  """The newest checkpoint of a run folder (checksums verified) and the epochs it holds."""
  folder = pathlib.Path(run_dir) / "checkpoints"
  if not folder.is_dir():
    raise CheckpointError(f"{str(run_dir)!r} has no checkpoints/: the run has not finished an epoch; "
                          "train it first (rramjax run).")
  checkpointer = Checkpointer(folder)
  try:
    state, meta = checkpointer.restore(template)
  finally:
    checkpointer.close()
  return state, meta.get("epochs_done")


@functools.lru_cache(maxsize=16)
def _vmapped_eval(graphdef, hw: HardwareConfig, plans, backend):
  """`(state, images, labels, valid, key_data (E, ...), values {leaf: (E, ...)}) -> (correct, loss)`
  per entry: the 'ou' eval step with `values` as `hw_state` entries, vmapped over entries, jitted."""
  step = make_eval_step(graphdef, hardware_glue.conv_builder("ou", hw, plans, backend))

  def one(state, images, labels, valid, key_data, values):
    state = {**state, "hw_state": {**state["hw_state"], **values}}
    return step(state, images, labels, valid, jax.random.wrap_key_data(key_data))

  return jax.jit(jax.vmap(one, in_axes=(None, None, None, None, 0, 0)))


def _entry_order(members: list, count: dict, cap: int) -> list[tuple]:
  """The `(point, seed)` entries of `members` in call order: points in blocks of `cap`, each block
  seed by seed, so that a call's entries mostly share one seed (the numba kernels then draw each
  read-noise value once for all of them) and a block's points finish together."""
  entries = []
  for i in range(0, len(members), cap):
    block = members[i:i + cap]
    entries += [(u, seed) for seed in range(max(count[u] for u in block)) for u in block
                if seed < count[u]]
  return entries


def _chunks(entries: list, cap: int) -> list[list]:
  """`entries` in calls of at most `cap`, all of one size (the last padded with its last entry):
  one compilation per group."""
  calls = -(-len(entries) // cap)
  size = -(-len(entries) // calls)
  out = [entries[i:i + size] for i in range(0, len(entries), size)]
  out[-1] = out[-1] + [out[-1][-1]] * (size - len(out[-1]))
  return out


class SweepEvaluator:
  """The run's model, its data and the compiled evaluations of a sweep.

  Args:
    run_dir: the run folder (read only: nothing is written there).
    config: the run's config (`config.json`).
    datasets: replaces the config's data set (`Trainer`), e.g. a small set in tests.
  """

  def __init__(self, run_dir, config: Config, *, datasets=None):
    self.config = config
    self.trainer = Trainer(config, run_dir, progress=False, datasets=datasets)
    self.state, self.epoch = restore_newest(run_dir, self.trainer.template)
    self.masks = [np.asarray(m) for m in self.state["masks"]]
    self._plans = {}
    self._calibrations = {}
    self._ideal = {}
    self._tune_steps = {}
    self._bn_fns = {}
    self._run = self.setup(config)

  # Setting points up -------------------------------------------------------------------------
  def setup(self, config: Config) -> PointSetup:
    """The point's plans, compile group and calibration keys (plans built once per content)."""
    hw, crossbar = config.hardware, config.crossbar
    plans = hardware_glue.ou_plans(config, self.masks, hw)
    digest = plans_digest(plans)
    plans = self._plans.setdefault(digest, plans)
    static = static_hardware(hw) if plans is not None else hw
    mode = "max" if hw.adc_full_scale == "max" else "calibrated"
    calib_hw = static.replace(adc_full_scale=mode, adc_percentile=hw.adc_percentile)
    return PointSetup(config=config, plans=plans, hardware=static,
                      group=(static, digest, crossbar.backend, crossbar.eval_limit),
                      calibration=(calib_hw, digest, crossbar.act_percentile,
                                   crossbar.calib_examples))

  def _trained_scales(self, setup: PointSetup) -> bool:
    """A 'learned' point on the run's own crossbar keeps the run's trained scales."""
    run, hw = self._run, setup.config.hardware
    return (hw.adc_full_scale == "learned" and run.config.hardware.adc_full_scale == "learned"
            and int(self.state["hw_calibrated"]) == 1 and setup.group[:2] == run.group[:2]
            and setup.calibration[2:] == run.calibration[2:])

  def calibrated_state(self, setup: PointSetup) -> dict:
    """`hw_state` (act_scale, adc_full_scale) of the point's calibration, as numpy (cached)."""
    if self._trained_scales(setup):
      return {k: np.asarray(v) for k, v in self.state["hw_state"].items()}
    if setup.calibration not in self._calibrations:
      config = setup.config
      images = self.trainer.calibration_images(config.crossbar.calib_examples)
      state = hardware_glue.calibrate(config, self.state, self.trainer.graph_eval, images,
                                      hw=setup.calibration[0], plans=setup.plans)
      self._calibrations[setup.calibration] = {k: np.asarray(v) for k, v in state["hw_state"].items()}
    return self._calibrations[setup.calibration]

  def values(self, setup: PointSetup) -> dict[str, np.ndarray]:
    """The point's traced `hw_state` entries (float32 numpy; see the module doc)."""
    hw = setup.config.hardware
    calibrated = self.calibrated_state(setup)
    top = 2**hw.adc_bits - 1
    full_scale = calibrated["adc_full_scale"]
    if hw.adc_full_scale == "max":
      full_scale = np.full_like(full_scale, hw.adc_lsb * top)
    values = {"act_scale": calibrated["act_scale"], "adc_full_scale": full_scale}
    if setup.traced:
      values.update(adc_max_code=np.asarray(top), read_noise_lsb=np.asarray(hw.read_noise_lsb))
    return {k: np.asarray(v, np.float32) for k, v in values.items()}

  # Evaluating --------------------------------------------------------------------------------
  def noise_keys(self, seeds: int) -> np.ndarray:
    """Key data of the noise draws: `hardware_eval`'s keys (the run's hardware-evaluation stream)."""
    keys = jax.random.split(stream_key(self.state, HARDWARE_EVAL_KEY), seeds)
    return np.asarray(jax.random.key_data(keys))

  def limit(self, setup: PointSetup) -> int | None:
    return setup.config.crossbar.eval_limit

  def ideal_accuracy(self, limit: int | None, state: dict | None = None) -> float:
    """The model at 'ideal' on the first `limit` test images (cached for the run's model)."""
    if state is None and limit in self._ideal:
      return self._ideal[limit]
    row = hardware_glue.hardware_eval(self.config, state or self.state, "ideal",
                                      graphdef=self.trainer.graph_eval,
                                      evaluate=self.trainer.evaluate_with, limit=limit)
    if state is None:
      self._ideal[limit] = row["accuracy_mean"]
    return row["accuracy_mean"]

  def evaluate(self, setups: list[PointSetup], seeds: int, state: dict | None = None):
    """Yields `(indices, result)` as points finish: each compile group's points (times their seeds:
    `seeds` with device noise, else 1) through its vmapped evaluation.

    Points with equal groups and values are evaluated once; `indices` lists every such point.
    `result` holds `ou_accuracy_mean`, `ou_accuracy_std`, `ou_accuracy_per_seed`, `seeds` and
    `examples`. With `state` (a fine-tuned model) its own `hw_state` holds the points' values.
    """
    keys = self.noise_keys(seeds)
    groups = {}
    for index, setup in enumerate(setups):
      groups.setdefault(setup.group, []).append(index)
    for members in groups.values():
      yield from self._evaluate_group([setups[i] for i in members], members, keys, state)

  def _evaluate_group(self, setups, indices, keys, state):
    """One compile group: a call per activation scaling (held in the state, unbatched, as in a
    point's own evaluation: XLA divides by a batched and by an unbatched step differently in the
    last bit, which moves input codes that sit on a rounding tie), its points' other values vmapped."""
    first, base = setups[0], self.state if state is None else state
    unique = {}  # the values' bytes -> (values, noisy, indices): equal points are evaluated once
    for setup, index in zip(setups, indices):
      values = self.values(setup)
      if state is not None:
        values = {k: np.asarray(state["hw_state"][k], np.float32) for k in values}
      tag = tuple(values[k].tobytes() for k in sorted(values))
      unique.setdefault(tag, (values, setup.noisy, []))[2].append(index)
    owners = list(unique.values())
    fn = _vmapped_eval(self.trainer.graph_eval, first.hardware, first.plans,
                       first.config.crossbar.backend)
    limit = first.config.crossbar.eval_limit
    batch = min(self.config.train.eval_batch_size, limit or self.config.train.eval_batch_size)
    by_scale = {}
    for u, (values, _, _) in enumerate(owners):
      by_scale.setdefault(values["act_scale"].tobytes(), []).append(u)
    cap = max(1, VMAP_IMAGES // batch)
    for members in by_scale.values():
      act_scale = jnp.asarray(owners[members[0]][0]["act_scale"])
      call_state = {**base, "hw_state": {**base["hw_state"], "act_scale": act_scale}}
      count = {u: len(keys) if owners[u][1] else 1 for u in members}
      members = sorted(members, key=lambda u: count[u])  # noise-free points first
      entries = _entry_order(members, count, cap)
      results, next_done = {u: [] for u in members}, 0
      for chunk in _chunks(entries, cap):
        values = {k: np.stack([owners[u][0][k] for u, _ in chunk])
                  for k in owners[members[0]][0] if k != "act_scale"}
        step = functools.partial(_bound, fn, values)
        accuracy, loss, examples = self.trainer.evaluate_with(
            step, call_state, np.stack([keys[seed] for _, seed in chunk]), limit)
        for (u, seed), acc, lo in zip(chunk, np.asarray(accuracy), np.asarray(loss)):
          if len(results[u]) == seed:  # the padding repeats the last entry
            results[u].append((float(acc), float(lo)))
        while next_done < len(members) and len(results[members[next_done]]) == count[members[next_done]]:
          u = members[next_done]
          yield owners[u][2], _summary(results[u], examples)
          next_done += 1

  def evaluate_alone(self, config: Config, seeds: int) -> dict:
    """One point the way a script per point does it: its own calibration and compiled evaluation
    (`hardware_glue.calibrate` and `hardware_eval` at its hardware). The vectorised path's
    reference, in the tests and the benchmark."""
    setup = self.setup(config)
    hw = config.hardware
    plans = hardware_glue.ou_plans(config, self.masks, hw)
    if self._trained_scales(setup):
      state = self.state
    else:
      images = self.trainer.calibration_images(config.crossbar.calib_examples)
      state = hardware_glue.calibrate(config, self.state, self.trainer.graph_eval, images, hw=hw,
                                      plans=plans)
    return hardware_glue.hardware_eval(config, state, "ou", graphdef=self.trainer.graph_eval,
                                       evaluate=self.trainer.evaluate_with, hw=hw, seeds=seeds)

  # Batch-norm re-estimation --------------------------------------------------------------------
  def recalibrate_bn(self, setup: PointSetup, batches: int, fidelity: str = "ou") -> dict:
    """The run's model with its batch-norm statistics re-estimated at the point's crossbar.

    The run's statistics are running averages of what the layers saw in training: after hwtune,
    activations computed by the run's crossbar with its read noise, whose ADC clipping and noise
    shift the layers' means. At another point they describe another crossbar. Here each batch
    norm's mean and variance become the mean, over `batches` training batches (those of the epochs
    after the run's last, as `hwtune`'s), of that batch's mean and (biased) variance of the layer's
    input, computed in training mode with the point's calibration and read noise (key
    `fold_in(stream_key(state, BN_RECAL_KEY), batch)`), or with `fidelity='ideal'` with digital
    convolutions (the same batches). Weights, masks and scales are the run's; the forward pass
    compiles once per compile group (the point's values are arrays).

    Returns:
      A state for `evaluate(..., state=)`: the run's, with the point's `hw_state` and the
      re-estimated `batch_stats`.
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
      raise ValueError(f"recalibrate_bn: batches must be a positive integer, got {batches!r}.")
    stats_fn = self._bn_stats_fn(setup, fidelity)
    state = {**self.state, "hw_state": {k: jnp.asarray(v) for k, v in self.values(setup).items()}}
    images = (batch for batch, _ in self._tune_batches())
    return hardware_glue.reestimate_bn(state, stats_fn, images, batches)

  def _bn_stats_fn(self, setup: PointSetup, fidelity: str):
    """`(state, images, key) -> batch_stats` at the point's crossbar (`make_bn_stats_step`)."""
    if fidelity not in ("ou", "ideal"):
      raise ValueError(f"recalibrate_bn: fidelity must be 'ou' or 'ideal', got {fidelity!r}.")
    backend = setup.config.crossbar.backend
    cache_key = ((setup.hardware, plans_digest(setup.plans), backend) if fidelity == "ou"
                 else "ideal")
    if cache_key not in self._bn_fns:
      builder = (hardware_glue.conv_builder("ou", setup.hardware, setup.plans, backend)
                 if fidelity == "ou" else hardware_glue.conv_builder("ideal", setup.hardware))
      self._bn_fns[cache_key] = hardware_glue.make_bn_stats_step(self.trainer.graph_train, builder)
    return self._bn_fns[cache_key]

  # Hardware fine-tuning ------------------------------------------------------------------------
  def hwtune(self, setup: PointSetup, steps: int) -> dict:
    """The model after `steps` steps of masked training with the point's crossbar in the loop.

    It starts from the run's model with the point's calibration; Adam at `train.hwtune_lr`, cosine
    decay over the steps (as the run's hwtune phase), training batches of the epochs after the
    run's last; read noise drawn afresh each step. A 'learned' full scale trains beside the weights.
    The step compiles once per compile group: the point's values enter as arrays.
    """
    config = setup.config
    tx = create_optimizer(config, config.train.hwtune_lr, steps)
    step = self._tune_step(setup, tx, steps)
    state = jax.tree_util.tree_map(jnp.copy, self.state)  # the step donates its state
    state["hw_state"] = {k: jnp.asarray(v) for k, v in self.values(setup).items()}
    state["hw_calibrated"] = jnp.ones((), jnp.int32)
    state["opt_state"] = tx.init(hardware_glue.trainable(state, config))
    for images, labels in itertools.islice(self._tune_batches(), steps):
      state, _ = step(state, images, labels)
    return state

  def _tune_step(self, setup: PointSetup, tx, steps: int):
    config = setup.config
    learned = config.hardware.adc_full_scale == "learned"
    hw = setup.hardware.replace(adc_full_scale="learned") if learned else setup.hardware
    key = (hw, plans_digest(setup.plans), config.crossbar.backend, config.train.hwtune_lr, steps)
    if key not in self._tune_steps:
      self._tune_steps[key] = make_train_step(
          self.trainer.graph_train, tx,
          hardware_glue.conv_builder("ou", hw, setup.plans, config.crossbar.backend),
          label_smoothing=config.train.label_smoothing,
          trainable_hw=hardware_glue.trainable_hw_key(config))
    return self._tune_steps[key]

  def _tune_batches(self):
    for epoch in itertools.count(len(self.trainer.plan)):
      yield from self.trainer.train_batches(epoch)


def _summary(results, examples: int) -> dict:
  """Mean and std over seeds (of `(accuracy, loss)` pairs), as `hardware_eval` reports them."""
  acc, loss = np.asarray(results).T
  return {"ou_accuracy_mean": float(acc.mean()), "ou_accuracy_std": float(acc.std()),
          "ou_accuracy_per_seed": [float(a) for a in acc], "ou_loss_mean": float(loss.mean()),
          "seeds": len(acc), "examples": int(examples)}


def _bound(fn, values, state, images, labels, valid, keys):
  return fn(state, images, labels, valid, keys, values)
