"""`train_and_evaluate`: pretrain -> ADMM -> hard pruning -> masked fine-tuning, resumable.

The run is a sequence of epochs, each in one phase. A checkpoint holds the whole state after
every epoch (weights, batch statistics, optimizer, masks, pattern libraries, ADMM variables,
hardware state, step); phase transitions are deterministic functions of that state, and the batch
order and every random key are functions of (seed, epoch, step), so a run killed anywhere and
resumed ends with exactly the metrics of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rramjax import data as data_lib
from rramjax import models
from rramjax.config import Config
from rramjax.errors import ConfigError, TrainingDivergedError
from rramjax.hardware.config import HardwareConfig
from rramjax.train import hardware_glue, parallel, pruning, report, targets
from rramjax.train import workdir as workdir_lib
from rramjax.train.checkpoint import Checkpointer
from rramjax.train.metrics import MetricsWriter
from rramjax.train.step import (EPOCH_EVAL_KEY, conv_kernels, make_eval_step, make_train_step,
                                stream_key)


@dataclasses.dataclass(frozen=True)
class Epoch:
  index: int          # global epoch index, 0-based
  phase: str          # 'pretrain', 'admm', 'finetune' or 'hwtune'
  in_phase: int       # epoch index inside its phase
  phase_epochs: int
  lr: float
  steps: int          # train steps in this epoch


def epoch_plan(config: Config, steps_per_epoch: int) -> list[Epoch]:
  """The run's epochs: pretrain (dense) -> admm -> finetune (masked) -> hwtune (masked, hardware).

  ADMM runs only when pruning is enabled; the hard projection to masks happens when fine-tuning
  begins. `hwtune` fine-tunes at `crossbar.train_fidelity` (the crossbar in the loop), for
  `train.hwtune_steps` steps per epoch when set (the 'ou' model is slow on a CPU).
  """
  t = config.train
  stages = [("pretrain", t.pretrain_epochs, t.pretrain_lr, steps_per_epoch)]
  if config.prune.enabled:
    stages.append(("admm", t.admm_epochs, t.admm_lr, steps_per_epoch))
  stages.append(("finetune", t.finetune_epochs, t.finetune_lr, steps_per_epoch))
  stages.append(("hwtune", t.hwtune_epochs, t.hwtune_lr,
                 min(steps_per_epoch, t.hwtune_steps or steps_per_epoch)))
  plan = []
  for name, epochs, lr, steps in stages:
    plan += [Epoch(len(plan) + i, name, i, epochs, lr, steps) for i in range(epochs)]
  return plan


def create_optimizer(config: Config, lr: float, total_steps: int) -> optax.GradientTransformation:
  """The phase's optimizer; weight decay touches model weights only, never hardware state."""
  t = config.train
  schedule = optax.cosine_decay_schedule(lr, max(total_steps, 1)) if t.schedule == "cosine" \
      else optax.constant_schedule(lr)
  if t.optimizer == "sgd":
    core = optax.chain(optax.trace(decay=t.momentum, nesterov=True), optax.scale_by_learning_rate(schedule))
  else:
    core = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(schedule))
  decay = t.weight_decay if t.optimizer != "adam" else 0.0
  weights_only = lambda tree: {k: jax.tree_util.tree_map(lambda _: k == "params", v) for k, v in tree.items()}
  return optax.chain(optax.masked(optax.add_decayed_weights(decay), weights_only), core)


def _input_spec(config: Config, train_ds) -> tuple[int, int]:
  side = config.data.pad_to or train_ds.images.shape[1]
  return side, train_ds.images.shape[-1]


def build_model(config: Config, num_classes: int, side: int, channels: int):
  m = config.model
  return models.create_model(m.name, num_classes=num_classes, in_channels=channels, input_size=side,
                             width=m.width, hidden=m.hidden, seed=config.seed)


def init_state(config: Config, model, steps_per_epoch: int) -> dict:
  """The complete training state; its structure is the same in every phase (for checkpoints)."""
  _, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  params = nnx.to_pure_dict(params)
  kernels = conv_kernels(params)
  state = {
      "params": params,
      "batch_stats": nnx.to_pure_dict(batch_stats),
      "step": jnp.zeros((), jnp.int32),
      "key": jax.random.key_data(jax.random.key(config.seed)),  # the run key (step.py's streams)
      "masks": [jnp.ones_like(k) for k in kernels],
      **hardware_glue.init_state(config, len(kernels)),
      **pruning.init_state(config, kernels),
  }
  trainable = hardware_glue.trainable(state, config)
  state["opt_state"] = create_optimizer(config, 1.0, steps_per_epoch).init(trainable)
  return state


class Trainer:
  """Holds the data, the model graph and the compiled steps of one run.

  Args:
    config: the run's config.
    workdir: the run folder (the report's files are written there).
    progress: show a progress bar per epoch.
    datasets: the training and test splits (`rramjax.data.Splits`); None loads
      `config.data.name`. The config's `train_limit` and `test_limit` apply either way.
  """

  def __init__(self, config: Config, workdir: str | pathlib.Path, *, progress: bool = True,
               datasets: data_lib.Splits | None = None):
    self.config = config
    self.workdir = pathlib.Path(workdir)
    self.progress = progress
    d = config.data
    if datasets is None:
      datasets = data_lib.load_splits(d.name, data_dir=d.data_dir, tfds_data_dir=d.tfds_data_dir)
    self.train_ds = datasets.train.take(d.train_limit)
    self.test_ds = datasets.test.take(d.test_limit)
    bs = config.train.batch_size
    if len(self.train_ds) < bs:
      raise ConfigError(f"train.batch_size {bs} exceeds the {len(self.train_ds)} training examples.")
    self.steps_per_epoch = len(self.train_ds) // bs
    self.side, self.channels = _input_spec(config, self.train_ds)
    self._make_model = functools.partial(build_model, config, self.train_ds.num_classes, self.side,
                                         self.channels)
    model = nnx.eval_shape(self._make_model)  # the graphs need shapes only
    self.plan_conv = model.plan
    # The state's structure (the checkpoints' restore target), without allocating it.
    graph, shapes = nnx.split(model)
    self.template = jax.eval_shape(
        lambda s: init_state(config, nnx.merge(graph, s), self.steps_per_epoch), shapes)
    model.train()
    self.graph_train = nnx.graphdef(model)
    model.eval()
    self.graph_eval = nnx.graphdef(model)
    self.plan = epoch_plan(config, self.steps_per_epoch)
    targets.check_targets(config, [e.phase for e in self.plan], self.template["masks"])
    self.device_train = self.device_test = None
    if d.on_device:
      self.device_train = data_lib.DeviceData(self.train_ds, pad_to=d.pad_to, norm=d.normalize)
      self.device_test = data_lib.DeviceData(self.test_ds, pad_to=d.pad_to, norm=d.normalize)
    self.data_mesh = parallel.make_mesh(config.train.devices, bs)
    self.mesh = self.data_mesh  # the mesh of the work at hand (`place`)
    self._steps = {}
    self._evals = {}
    self._bn_steps = {}

  def place(self, state, fidelity: str) -> dict:
    """Picks the mesh for work at `fidelity` and puts `state` on it.

    The data mesh (`train.devices`), except where the work must run on one device
    (`hardware_glue.one_device`: the numba kernels of the planned `ou` path); then the state
    moves to a mesh of the first device alone, and back for the next work that can use them all.
    """
    mesh = self.data_mesh
    if mesh is not None and hardware_glue.one_device(self.config, fidelity):
      mesh = parallel.one_device_mesh()
    if mesh is self.mesh:
      return state
    self.mesh = mesh
    return parallel.replicate(mesh, state)

  def initial_state(self) -> dict:
    """The state a run starts from: freshly initialised weights (seeded), optimizer, hardware
    (replicated over the data mesh's devices)."""
    return parallel.replicate(self.mesh, init_state(self.config, self._make_model(),
                                                    self.steps_per_epoch))

  # Data ---------------------------------------------------------------------------------------
  def train_batches(self, epoch: int):
    c = self.config
    if self.device_train is not None:
      return self.device_train.batches(c.train.batch_size, seed=c.seed, epoch=epoch, shuffle=True)
    return data_lib.batches(self.train_ds, c.train.batch_size, seed=c.seed, epoch=epoch, shuffle=True,
                            augment=c.data.augment, pad_to=c.data.pad_to, norm=c.data.normalize)

  def test_batches(self, limit: int | None = None):
    c = self.config
    ds = self.test_ds.take(limit)
    return data_lib.batches(ds, c.train.eval_batch_size, seed=c.seed, epoch=0, shuffle=False,
                            pad_to=c.data.pad_to, norm=c.data.normalize, drop_remainder=False)

  def calibration_images(self, examples: int | None = None) -> np.ndarray:
    """The first `examples` (default `crossbar.calib_examples`) training images, as the model takes them."""
    c = self.config
    ds = self.train_ds.take(examples or c.crossbar.calib_examples)
    return next(data_lib.batches(ds, len(ds), seed=c.seed, epoch=0, shuffle=False,
                                 pad_to=c.data.pad_to, norm=c.data.normalize))[0]

  # Steps --------------------------------------------------------------------------------------
  def train_step(self, epoch: Epoch, masks=None):
    """`(optimizer, train_step)` of an epoch's phase (built once per phase; the state is donated).

    At the 'ou' fidelity the step computes the OUs of the mapping of `masks` (fixed in hwtune).
    """
    fidelity = hardware_glue.train_fidelity(self.config, epoch.phase)
    plans = hardware_glue.ou_plans(self.config, masks) if fidelity == "ou" and masks else None
    key = (epoch.phase, epoch.lr, fidelity, id(plans))
    if key not in self._steps:
      tx = create_optimizer(self.config, epoch.lr, epoch.phase_epochs * epoch.steps)
      builder = hardware_glue.conv_builder(fidelity, self.config.hardware, plans,
                                           self.config.crossbar.backend)
      self._steps[key] = (tx, make_train_step(
          self.graph_train, tx, builder,
          penalty=pruning.penalty(epoch.phase),
          label_smoothing=self.config.train.label_smoothing,
          trainable_hw=hardware_glue.trainable_hw_key(self.config)))
    return self._steps[key]

  def eval_step(self, fidelity: str):
    if fidelity not in self._evals:
      self._evals[fidelity] = make_eval_step(
          self.graph_eval, hardware_glue.conv_builder(fidelity, self.config.hardware))
    return self._evals[fidelity]

  def evaluate(self, state, fidelity: str = "ideal", key=None, limit=None) -> dict:
    """Test accuracy and loss at one fidelity (one noise key, by default the epoch-eval stream's)."""
    key = stream_key(state, EPOCH_EVAL_KEY) if key is None else key
    correct, loss, _ = self.evaluate_with(self.eval_step(fidelity), state, key, limit)
    return {"accuracy": float(correct), "loss": float(loss)}

  def evaluate_with(self, step, state, keys, limit=None):
    """Runs `step(state, images, labels, valid, keys)` over the test set.

    Returns:
      (mean accuracy, mean loss, examples); with a vmapped step and a batch of keys, accuracy
      and loss have one entry per key.
    """
    correct = loss = n = 0
    bs = self.config.train.eval_batch_size
    for images, labels in self.test_batches(limit):
      valid = np.arange(bs) < len(labels)
      pad = bs - len(labels)
      if pad:
        images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
        labels = np.concatenate([labels, np.zeros((pad,), labels.dtype)])
      if self.mesh is not None and bs % self.mesh.size == 0:
        images, labels, valid = parallel.shard_batch(self.mesh, images, labels, valid)
      c, l = step(state, images, labels, valid, keys)
      correct, loss, n = correct + c, loss + l, n + int(valid.sum())
    return np.asarray(correct) / n, np.asarray(loss) / n, n

  # Hardware and report --------------------------------------------------------------------------
  def calibrate(self, state) -> dict:
    """The state with activation (and ADC) scales calibrated on this run's calibration images.

    The calibration runs eagerly on one device, outside the data mesh (host copies of the
    weights): eager host callbacks of the planned kernels, replicated over several devices,
    deadlock; the scales are then replicated.
    """
    local = jax.device_get({k: state[k] for k in ("params", "batch_stats", "masks", "hw_state")})
    with jax.set_mesh(None):
      out = hardware_glue.calibrate(self.config, {**state, **local}, self.graph_eval,
                                    self.calibration_images(),
                                    plans=hardware_glue.ou_plans(self.config, local["masks"]))
    return {**state, **parallel.replicate(self.mesh, {k: out[k] for k in ("hw_state", "hw_calibrated")})}

  def hardware_eval(self, state, fidelity: str, hw: HardwareConfig | None = None,
                    model: str = "final") -> dict:
    """One row of the hardware table on this run's test set (`hardware_glue.hardware_eval`)."""
    return hardware_glue.hardware_eval(self.config, state, fidelity, graphdef=self.graph_eval,
                                       evaluate=self.evaluate_with, hw=hw, model=model)

  def reestimate_bn(self, state, fidelity: str, hw: HardwareConfig | None = None) -> dict:
    """The state with its batch-norm statistics re-estimated at `fidelity` and `hw`
    (`hardware_glue.reestimate_bn` over `crossbar.eval_bn_batches` training batches, those of the
    epochs after the run's last, as a sweep's; the state must be calibrated for 'ou')."""
    c = self.config
    hw = hw or c.hardware
    plans = hardware_glue.ou_plans(c, state["masks"], hw) if fidelity == "ou" else None
    key = (fidelity, hw if fidelity == "ou" else None, id(plans))
    if key not in self._bn_steps:
      self._bn_steps[key] = hardware_glue.make_bn_stats_step(
          self.graph_train, hardware_glue.conv_builder(fidelity, hw, plans, c.crossbar.backend))
    mesh = self.mesh if self.mesh is not None and c.train.batch_size % self.mesh.size == 0 else None

    def images():
      for epoch in itertools.count(len(self.plan)):
        for batch, _ in self.train_batches(epoch):
          yield parallel.shard_batch(mesh, batch)[0]

    return hardware_glue.reestimate_bn(state, self._bn_steps[key], images(),
                                       c.crossbar.eval_bn_batches)

  def final_report(self, state, reference=None) -> dict:
    """The run's summary (`report.final_report`).

    Args:
      state: the final state.
      reference: the state before the hwtune phase (the ideal pruned model), evaluated at 'ideal'
        on the hardware examples as the reference of the hardware rows; None to skip.
    """
    c = self.config
    rows = None
    if c.crossbar.eval_fidelity != "ideal":
      if not int(state["hw_calibrated"]):  # no hwtune phase: calibrate for the evaluation
        state = self.calibrate(state)
      rows = report.hardware_rows(c, state, reference, self.hardware_eval, self.reestimate_bn)
    return report.final_report(c, state, workdir=self.workdir, epochs=len(self.plan),
                               test=self.evaluate(state), hardware=rows,
                               out_hw=models.conv_output_sizes(self.plan_conv, self.side))

  def begin_phase(self, state, phase: str) -> dict:
    """The transition into a phase: a deterministic function of the state and the config."""
    if phase == "admm":
      return pruning.start_pruning(self.config, state)
    if phase == "finetune" and self.config.prune.enabled:
      return pruning.begin_finetune(self.config, state)
    if phase == "hwtune":
      return self.calibrate(state)
    return state

  # The run ------------------------------------------------------------------------------------
  def run_epoch(self, state, epoch: Epoch, writer: MetricsWriter):
    if epoch.in_phase == 0:
      state = self.begin_phase(state, epoch.phase)
    tx, step_fn = self.train_step(epoch, state["masks"])
    if epoch.in_phase == 0:
      state = {**state, "opt_state": tx.init(hardware_glue.trainable(state, self.config))}
    batches = itertools.islice(self.train_batches(epoch.index), epoch.steps)
    bar = tqdm(batches, total=epoch.steps, disable=not self.progress,
               desc=f"epoch {epoch.index + 1}/{len(self.plan)} {epoch.phase}", leave=False)
    sums = {"loss": 0.0, "correct": 0.0}
    every = self.config.train.log_every
    hook_every, hook = pruning.step_hook(self.config, epoch.phase)
    start_loss = None
    for i, (images, labels) in enumerate(bar):
      state, metrics = step_fn(state, *parallel.shard_batch(self.mesh, images, labels))
      sums = {k: sums[k] + metrics[k] for k in sums}
      if i == 0:  # the loss of the weights the epoch starts from (computed before the update)
        start_loss = float(metrics["loss"])
      if hook_every and (i + 1) % hook_every == 0 and i + 1 < epoch.steps:
        state = hook(state)
      if (i + 1) % every == 0 or i + 1 == epoch.steps:
        loss = float(metrics["total_loss"])
        check_divergence(self.config, epoch, int(state["step"]), loss, float(metrics["loss"]),
                         start_loss, self.train_ds.num_classes)
        bar.set_postfix(loss=f"{loss:.4f}")
        writer.write({"phase": epoch.phase, "epoch": epoch.index + 1, "step": int(state["step"]),
                      "train_loss": float(metrics["loss"])})
    if epoch.phase == "admm":
      state = pruning.admm_step(self.config, state)
    n = epoch.steps
    record = {"phase": epoch.phase, "epoch": epoch.index + 1, "step": int(state["step"]),
              "train_loss": float(sums["loss"]) / n,
              "train_accuracy": float(sums["correct"]) / (n * self.config.train.batch_size)}
    record.update({f"test_{k}": v for k, v in self.evaluate(state).items()})
    record.update(pruning.epoch_report(state, epoch.phase))
    return state, record


def check_divergence(config: Config, epoch: Epoch, step: int, total_loss: float, loss: float,
                     start_loss: float, num_classes: int) -> None:
  """Stops a run whose loss is non-finite or far above where its epoch started.

  The rule: the total loss (with any penalty) is NaN or inf, or the data loss exceeds
  `train.divergence_factor` times max(the loss at the epoch's first step, ln(num_classes)).
  ln(num_classes) is the loss of a uniform guess: the floor keeps a well-trained model's small
  loss from tripping on an ordinary noisy batch. The reference is per epoch because a resumed
  run starts at an epoch, so it stops exactly where an uninterrupted run would.

  Raises:
    TrainingDivergedError: saying what happened and what to change (the caller adds which
      checkpoint is kept).
  """
  where = f"at step {step} (epoch {epoch.index + 1}, phase {epoch.phase})"
  factor = config.train.divergence_factor
  lr_key = f"train.{epoch.phase}_lr"
  fix = f"Lower {lr_key} (now {epoch.lr:g}){' or prune.rho' if epoch.phase == 'admm' else ''}"
  if not math.isfinite(total_loss):
    raise TrainingDivergedError(f"The loss became {total_loss} {where}. {fix}.")
  floor = math.log(num_classes)
  reference = max(start_loss, floor) if math.isfinite(start_loss) else floor
  if not loss <= factor * reference:  # also catches a NaN data loss
    raise TrainingDivergedError(
        f"The loss reached {loss:.4g} {where}, over train.divergence_factor ({factor:g}) times "
        f"{reference:.4g} (the larger of its value at the epoch's first step, {start_loss:.4g}, "
        f"and ln({num_classes} classes)). {fix}, or raise train.divergence_factor (allowed on "
        "--resume) if such a loss is expected.")


def _diverged(error: TrainingDivergedError, workdir: pathlib.Path) -> TrainingDivergedError:
  """`error` with the checkpoint that is kept, and how to go on from it, added."""
  last = workdir_lib.last_checkpoint(workdir)
  if last is None:
    kept = ("No checkpoint exists yet (no epoch finished): start afresh with --overwrite or a "
            "new --workdir.")
  else:
    kept = (f"The last good checkpoint is {str(last)!r} (after epoch {last.name}): start afresh "
            "with --overwrite or a new --workdir, or copy that folder into a new folder's "
            "checkpoints/ and --resume there with the changed config.")
  return TrainingDivergedError(f"{error} {kept}")


def _stderr(message: str):
  print(message, file=sys.stderr)


def _before_hwtune(trainer: Trainer, ckpt: Checkpointer, log) -> dict | None:
  """The state at the end of the phases before hwtune (a kept phase-end checkpoint), or None."""
  start = next((e.index for e in trainer.plan if e.phase == "hwtune"), None)
  if not start or trainer.config.crossbar.eval_fidelity == "ideal":
    return None
  if start not in ckpt.all_epochs():
    log(f"No checkpoint after epoch {start} (before hwtune): the hardware table has no "
        "'before hwtune' reference row.")
    return None
  return parallel.replicate(trainer.mesh, ckpt.restore(trainer.template, start)[0])


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, *, resume: bool = False,
                       overwrite: bool = False, progress: bool = True, log=print,
                       warn=None, datasets: data_lib.Splits | None = None) -> dict:
  """Runs (or resumes) the configured pipeline in `workdir` and returns the final summary.

  Every check runs before anything is written in `workdir` (see `rramjax.train.workdir`): the
  folder, the resume contract, the data, the plan and, on resume, the checkpoint itself.

  Args:
    config: the run's config.
    workdir: the run folder.
    resume: continue the run recorded in `workdir` from its last checkpoint.
    overwrite: replace a run already in `workdir` (its files are removed, and named via `warn`).
    progress: show a progress bar.
    log: called with each progress line (epoch records, the resume point).
    warn: called with notices about the folder (default: printed to stderr).
    datasets: replaces the config's data set (see `Trainer`), e.g. a tiny in-memory set in tests.

  Returns:
    The summary (also written to summary.json).

  Raises:
    WorkdirError: the folder cannot be written, or holds a run and neither flag is given.
    ConfigError: a bad config, or (on resume) one that differs from the recorded run.
    CheckpointError: on resume, no checkpoint or an unreadable one.
    DataError: the data set is missing or corrupt.
    TrainingDivergedError: the loss diverged; names the checkpoint that is kept.
  """
  warn = warn or _stderr
  workdir = pathlib.Path(workdir)
  mode = workdir_lib.prepare(workdir, config, resume=resume, overwrite=overwrite, warn=warn)
  if config.train.cpu_devices != 1:
    parallel.split_cpu(config.train.cpu_devices, warn)
  trainer = Trainer(config, workdir, progress=progress, datasets=datasets)
  phase_ends = [e.index + 1 for e in trainer.plan if e.in_phase == e.phase_epochs - 1]
  if mode == "overwrite":
    workdir_lib.clear_run(workdir, warn)
  workdir.mkdir(parents=True, exist_ok=True)
  ckpt = Checkpointer(workdir / "checkpoints", keep_epochs=phase_ends)
  try:  # orbax's threads are stopped on every exit: no tracebacks or hangs after an error
    if mode == "resume":
      state, meta = ckpt.restore(trainer.template)
      state = parallel.replicate(trainer.mesh, state)
      start, resume_step = meta["epochs_done"], int(state["step"])
      log(f"Resumed from {ckpt.directory / str(start)} after epoch {start} (step {resume_step}).")
    else:
      state, start, resume_step = trainer.initial_state(), 0, None
    workdir_lib.write_config(workdir, config)
    writer = MetricsWriter(workdir / "metrics.jsonl", resume_step)
    if writer.dropped:
      warn(f"Moved {writer.dropped[1]} metrics row(s) past step {resume_step} (not in the "
           f"checkpoint) to {writer.dropped[0]}.")
    t0 = time.time()
    for epoch in trainer.plan[start:]:
      state = trainer.place(state, hardware_glue.train_fidelity(config, epoch.phase))
      try:
        with parallel.use_mesh(trainer.mesh):
          state, record = trainer.run_epoch(state, epoch, writer)
      except TrainingDivergedError as e:
        raise _diverged(e, workdir) from None
      record["elapsed_s"] = round(time.time() - t0, 1)
      writer.write(record)
      ckpt.save(epoch.index + 1, state, {"epochs_done": epoch.index + 1, "phase": epoch.phase})
      log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    state = trainer.place(state, config.crossbar.eval_fidelity)
    with parallel.use_mesh(trainer.mesh):
      summary = trainer.final_report(state, _before_hwtune(trainer, ckpt, log))
  finally:
    ckpt.close()
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
  return summary
