"""The training loop: exact resume after a real SIGKILL, divergence, corrupt checkpoints, masked
steps that never revive a pruned weight, and one trace per train step.

The runs use the smoke pipeline without the crossbar phase (conftest.SMOKE_OVERRIDES): 4 epochs of
4 steps (2 dense, 1 ADMM, 1 masked fine-tuning). One in-process reference run is shared.
"""

import itertools
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
import pytest

from conftest import ROOT, SMOKE_OVERRIDES, SMOKE_SPEC, run_once, set_args
from rramjax.config import load_config
from rramjax.errors import CheckpointError, TrainingDivergedError
from rramjax.train import hardware_glue, loop, pruning
from rramjax.train.checkpoint import Checkpointer
from rramjax.train.metrics import read_metrics
from rramjax.train.step import apply_masks, conv_kernels, make_train_step

EPOCHS = 4
STEPS_PER_EPOCH = 4


def smoke_config():
  return load_config(str(ROOT / SMOKE_SPEC), list(SMOKE_OVERRIDES))


def quiet(*args):
  del args


def restore_raw(workdir, epoch):
  """The saved state pytree of one epoch, read without a template."""
  return ocp.StandardCheckpointer().restore((workdir / "checkpoints" / str(epoch) / "state").absolute())


def assert_trees_close(a, b):
  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def comparable_summary(summary, workdir):
  """summary.json without the run folder's name."""
  return json.loads(json.dumps(summary, default=float).replace(str(workdir), "<workdir>"))


def assert_summaries_equal(a, b):
  if isinstance(a, dict):
    assert sorted(a) == sorted(b)
    for k in a:
      assert_summaries_equal(a[k], b[k])
  elif isinstance(a, list):
    assert len(a) == len(b)
    for x, y in zip(a, b):
      assert_summaries_equal(x, y)
  elif isinstance(a, float):
    assert a == pytest.approx(b, rel=1e-6, abs=1e-7)
  else:
    assert a == b


def comparable_metrics(path):
  return [{k: v for k, v in r.items() if k not in ("time", "elapsed_s")} for r in read_metrics(path)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted in-process smoke run; counts how often each train step is traced."""

  def produce(workdir):
    traces = []
    real_make = loop.make_train_step

    def counting_make(graphdef, tx, conv_builder, **kw):
      traces.append(0)
      index = len(traces) - 1

      def builder(*args):  # called once each time the step's loss is traced
        traces[index] += 1
        return conv_builder(*args)

      return real_make(graphdef, tx, builder, **kw)

    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(loop, "make_train_step", counting_make)
      summary = loop.train_and_evaluate(smoke_config(), workdir, progress=False, log=quiet)
    return {"workdir": str(workdir), "summary": json.loads(json.dumps(summary, default=float)),
            "traces": traces}

  result = run_once(tmp_path_factory, "reference_run", produce)
  return {**result, "workdir": pathlib.Path(result["workdir"])}


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
  """A Trainer of the smoke config (data, model graph, state template, compiled steps)."""
  return loop.Trainer(smoke_config(), tmp_path_factory.mktemp("trainer"), progress=False)


def test_reference_run_is_complete(reference):
  wd, summary = reference["workdir"], reference["summary"]
  assert summary["epochs"] == EPOCHS and summary["steps"] == EPOCHS * STEPS_PER_EPOCH
  assert np.isfinite(summary["test"]["loss"]) and 0 <= summary["test"]["accuracy"] <= 1
  assert json.loads((wd / "summary.json").read_text())["test"] == summary["test"]
  records = read_metrics(wd / "metrics.jsonl")
  epochs = [r for r in records if "test_accuracy" in r]
  assert [r["phase"] for r in epochs] == ["pretrain", "pretrain", "admm", "finetune"]
  # Z/Y/dual updates in the ADMM epoch: after step 2 of 4 (admm_update_every=2) and at its end.
  prune = smoke_config().prune
  assert epochs[2]["rho"] == pytest.approx(prune.rho * prune.rho_growth**2, rel=1e-6)
  assert Checkpointer(wd / "checkpoints").latest_epoch() == EPOCHS


def test_each_train_step_is_traced_once(reference):
  """The loop's train steps (one per phase) compile once over all their steps: static shapes."""
  assert reference["traces"] == [1, 1, 1]  # pretrain, admm, finetune


def test_resume_after_sigkill_matches_uninterrupted_run(reference, tmp_path):
  workdir = tmp_path / "killed"
  cmd = [sys.executable, "-m", "rramjax", "run", SMOKE_SPEC, "--workdir", str(workdir),
         "--no-progress", *set_args(SMOKE_OVERRIDES)]
  first_ckpt = workdir / "checkpoints" / "1"
  with open(tmp_path / "killed.log", "w") as log:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not first_ckpt.is_dir() and proc.poll() is None and time.monotonic() < deadline:
      time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
  output = (tmp_path / "killed.log").read_text()
  assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{output[-3000:]}"
  assert not (workdir / "summary.json").exists()

  resumed = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                           check=False)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "== rramjax report ==" in resumed.stdout and "layer 0 library" in resumed.stdout
  found = re.search(r"Resumed from .* after epoch (\d+) \(step (\d+)\)", resumed.stdout)
  assert found, resumed.stdout[-3000:]
  assert 1 <= int(found[1]) < EPOCHS and int(found[2]) == int(found[1]) * STEPS_PER_EPOCH

  ref = reference["workdir"]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["test"]["accuracy"] == pytest.approx(reference["summary"]["test"]["accuracy"], abs=1e-7)
  assert summary["test"]["loss"] == pytest.approx(reference["summary"]["test"]["loss"], rel=1e-6)
  assert_summaries_equal(comparable_summary(summary, workdir),
                         comparable_summary(reference["summary"], ref))
  assert_trees_close(restore_raw(workdir, EPOCHS), restore_raw(ref, EPOCHS))

  metrics = comparable_metrics(workdir / "metrics.jsonl")
  kinds = [(r["step"], "test_accuracy" in r) for r in metrics]
  assert len(kinds) == len(set(kinds)), "metrics.jsonl repeats steps after the resume"
  assert_summaries_equal(metrics, comparable_metrics(ref / "metrics.jsonl"))


def test_resume_from_the_admm_checkpoint_replays_the_last_phase(reference, tmp_path):
  """In process: restore the ADMM state (libraries, Z/Y/U/V, rho) and finish identically."""
  workdir = tmp_path / "from_admm"
  shutil.copytree(reference["workdir"], workdir)
  shutil.rmtree(workdir / "checkpoints" / str(EPOCHS))
  (workdir / "summary.json").unlink()
  # The last epoch's rows stay in metrics.jsonl, as a kill after them leaves them; a line cut
  # short by the kill follows.
  last_rows = [r for r in (workdir / "metrics.jsonl").read_text().splitlines()
               if json.loads(r)["step"] > (EPOCHS - 1) * STEPS_PER_EPOCH]
  with (workdir / "metrics.jsonl").open("a") as f:
    f.write('{"time": 1.0, "phase": "finetu')
  logs, notices = [], []
  summary = loop.train_and_evaluate(smoke_config(), workdir, resume=True, progress=False,
                                    log=logs.append, warn=notices.append)
  assert any(f"after epoch {EPOCHS - 1}" in line for line in logs), logs
  # Those rows are moved aside, never deleted; the notice names the side file.
  side = list(workdir.glob("metrics.dropped-*.jsonl"))
  assert len(side) == 1 and str(side[0]) in " ".join(notices), notices
  assert side[0].read_text().splitlines() == [*last_rows, '{"time": 1.0, "phase": "finetu']
  assert_summaries_equal(comparable_metrics(workdir / "metrics.jsonl"),
                         comparable_metrics(reference["workdir"] / "metrics.jsonl"))
  assert_summaries_equal(comparable_summary(summary, workdir),
                         comparable_summary(reference["summary"], reference["workdir"]))
  assert_trees_close(restore_raw(workdir, EPOCHS), restore_raw(reference["workdir"], EPOCHS))


def test_nan_loss_raises_with_the_step_and_keeps_the_last_good_checkpoint(trainer, tmp_path,
                                                                          monkeypatch):
  real_batches = loop.Trainer.train_batches

  def poisoned(self, epoch):
    for images, labels in real_batches(self, epoch):
      yield (np.full_like(images, np.nan) if epoch == 1 else images), labels

  monkeypatch.setattr(loop.Trainer, "train_batches", poisoned)
  config = smoke_config()
  with pytest.raises(TrainingDivergedError) as e:
    loop.train_and_evaluate(config, tmp_path, progress=False, log=quiet)
  msg = str(e.value)
  # log_every=2: the first loss check of epoch 2 follows its second step, global step 6.
  assert "became nan at step 6 (epoch 2, phase pretrain)" in msg
  assert "Lower train.pretrain_lr" in msg
  # The checkpoint it names is the newest one on disk, and it exists.
  assert f"The last good checkpoint is '{tmp_path / 'checkpoints' / '1'}' (after epoch 1)" in msg
  assert "--overwrite" in msg and "--resume" in msg

  ckpt = Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest_epoch() == 1
  state, meta = ckpt.restore(trainer.template)  # the same config's state structure
  ckpt.close()
  assert meta["epochs_done"] == 1 and int(state["step"]) == STEPS_PER_EPOCH
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state["params"]))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_item"])
def test_corrupt_checkpoint_resume_raises_checkpoint_error(reference, tmp_path, damage):
  workdir = tmp_path / "run"
  shutil.copytree(reference["workdir"], workdir)
  latest = workdir / "checkpoints" / str(EPOCHS)
  files = sorted((p for p in (latest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  if damage == "truncate":
    for path in files:
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  elif damage == "flip":  # one byte of the largest array chunk: orbax alone restores it silently
    raw = bytearray(files[-1].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    files[-1].write_bytes(bytes(raw))
  else:
    shutil.rmtree(latest / "state")
  with pytest.raises(CheckpointError) as e:
    loop.train_and_evaluate(smoke_config(), workdir, resume=True, progress=False, log=quiet)
  msg = str(e.value)
  assert str(latest) in msg
  assert "Delete that folder to fall back to an earlier epoch" in msg and "afresh with --overwrite" in msg
  # Found by the checksums, before orbax reads anything (orbax alone misses some flipped bytes).
  assert "missing or changed since it was saved" in msg


def test_restore_without_checkpoint_says_so(tmp_path):
  ckpt = Checkpointer(tmp_path / "checkpoints")
  with pytest.raises(CheckpointError, match="No checkpoint in .*start afresh with --overwrite"):
    ckpt.restore({"x": jnp.zeros(2)})
  ckpt.close()


# The loop's fine-tuning step on the smoke run's state ---------------------------------------------
def _finetune(trainer):
  return next(e for e in trainer.plan if e.phase == "finetune")


def _pruned_state(trainer, tx, seed=0, keep=0.5):
  """The run's state with random 0/1 masks and the weights projected, as hard pruning leaves it."""
  return _prune(_with_fresh_optimizer(trainer, tx, trainer.initial_state()), seed, keep)


def _with_fresh_optimizer(trainer, tx, state):
  return {**state, "opt_state": tx.init(hardware_glue.trainable(state, trainer.config))}


def _prune(state, seed=0, keep=0.5):
  """Random 0/1 masks, the weights projected onto them; the optimizer state is kept as it is."""
  rng = np.random.default_rng(seed)
  masks = [jnp.asarray(rng.random(m.shape) < keep, jnp.float32) for m in state["masks"]]
  return {**state, "masks": masks, "params": apply_masks(state["params"], masks)}


def _conv_moments(opt_state):
  """Adam's mu and nu of every conv kernel: the 4-D leaves of the optimizer state (mu first)."""
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(opt_state) if getattr(x, "ndim", 0) == 4]


@pytest.mark.parametrize("optimizer_state", ["fresh", "carried_over"])
def test_masked_training_never_revives_a_pruned_weight(trainer, optimizer_state):
  """The loop's fine-tuning step plus a penalty whose gradient is nonzero at pruned positions.

  'fresh': the optimizer starts at zero (as every phase of the loop does), so only the gradient
  masking keeps its moments at pruned positions zero. 'carried_over': the moments come from dense
  steps and are nonzero at pruned positions, so Adam would move pruned weights without the
  masking of the new weights. Each case fails when its masking line in make_train_step is gone.
  """
  config, epoch = trainer.config, _finetune(trainer)
  tx = loop.create_optimizer(config, epoch.lr, epoch.phase_epochs * epoch.steps)  # Adam
  builder = hardware_glue.conv_builder("ideal", config.hardware)
  step = make_train_step(trainer.graph_train, tx, builder, penalty=pruning.penalty("admm"))
  state = _with_fresh_optimizer(trainer, tx, trainer.initial_state())
  dense = [np.asarray(k) for k in conv_kernels(state["params"])]
  if optimizer_state == "carried_over":
    for images, labels in itertools.islice(trainer.train_batches(0), 2):
      state, _ = step(state, images, labels)  # dense steps (all masks one): moments everywhere
  state = _prune(state)
  # The ADMM penalty pulls every weight towards the dense kernels: a gradient at pruned positions.
  state["admm"] = {"z": [jnp.asarray(k) for k in dense], "y": [jnp.asarray(k) for k in dense],
                   "u": [jnp.zeros_like(k) for k in dense], "v": [jnp.zeros_like(k) for k in dense]}
  state["rho"] = jnp.asarray(1.0, jnp.float32)
  masks = [np.asarray(m) for m in state["masks"]]
  moments = _conv_moments(state["opt_state"])
  assert len(moments) == 2 * len(masks)
  if optimizer_state == "carried_over":  # what makes the revival check below live
    assert all(np.any(m[masks[i % len(masks)] == 0] != 0) for i, m in enumerate(moments))
  before = [np.asarray(k) for k in conv_kernels(state["params"])]
  start = int(state["step"])
  for i, (images, labels) in enumerate(trainer.train_batches(epoch.index)):
    state, metrics = step(state, images, labels)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["total_loss"]) > float(metrics["loss"])
    for k, m in zip(conv_kernels(state["params"]), masks):
      assert np.all(np.asarray(k)[m == 0] == 0), f"a pruned weight revived at step {i + 1}"
  assert int(state["step"]) == start + STEPS_PER_EPOCH
  for k, k0, m in zip(conv_kernels(state["params"]), before, masks):
    assert not np.allclose(np.asarray(k)[m == 1], k0[m == 1])  # the kept weights did train
  moments = _conv_moments(state["opt_state"])
  for i, moment in enumerate(moments):
    m = masks[i % len(masks)]
    assert np.any(moment[m == 1] != 0)
    if optimizer_state == "fresh":
      assert np.all(moment[m == 0] == 0), "optimizer moments at pruned positions"


def test_train_step_donates_the_state_it_is_given(trainer):
  """The loop's steps consume their input state (jit donate_argnums): no second copy of it."""
  epoch = _finetune(trainer)
  tx, step = trainer.train_step(epoch)
  state = _pruned_state(trainer, tx)
  images, labels = next(iter(trainer.train_batches(epoch.index)))
  new, _ = step(state, images, labels)
  assert all(x.is_deleted() for x in jax.tree_util.tree_leaves(state))
  assert not any(x.is_deleted() for x in jax.tree_util.tree_leaves(new))


def test_template_is_abstract_and_matches_the_initial_state(trainer):
  """The restore target is built with jax.eval_shape: shapes and dtypes only, those of the state."""
  template, state = trainer.template, trainer.initial_state()
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree_util.tree_leaves(template))
  assert jax.tree_util.tree_structure(template) == jax.tree_util.tree_structure(state)
  assert jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), template) == \
      jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), state)


def test_evaluation_counts_each_test_example_once(trainer):
  """A short last batch is padded to eval_batch_size; padded rows never count, even when 'right'."""
  state = trainer.initial_state()
  images, labels = next(trainer.test_batches())
  model = nnx.merge(trainer.graph_eval, state["params"], state["batch_stats"])
  logits = np.asarray(model(images))
  n = 100
  assert n < len(labels) == trainer.config.train.eval_batch_size
  got = trainer.evaluate(state, limit=n)
  assert got["accuracy"] == pytest.approx(np.mean(logits[:n].argmax(-1) == labels[:n]), abs=1e-7)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  assert got["loss"] == pytest.approx(float(np.mean(losses[:n])), rel=1e-5)
  # The step itself: every row labelled with its prediction, only the valid ones count.
  step = trainer.eval_step("ideal")
  valid = np.arange(len(labels)) < n
  correct, _ = step(state, images, logits.argmax(-1), valid, jax.random.key(0))
  assert int(correct) == n


def test_train_step_traces_once_over_many_steps(trainer):
  """The fine-tuning step built as the loop builds it, its conv builder under chex's counter."""
  chex.clear_trace_counter()
  config, epoch = trainer.config, _finetune(trainer)
  tx = loop.create_optimizer(config, epoch.lr, epoch.phase_epochs * epoch.steps)
  builder = chex.assert_max_traces(hardware_glue.conv_builder("ideal", config.hardware), n=1)
  step = make_train_step(trainer.graph_train, tx, builder)  # the loop's finetune arguments
  state = _pruned_state(trainer, tx)
  for _ in range(2):  # two epochs: 8 steps
    for images, labels in trainer.train_batches(epoch.index):
      state, _ = step(state, images, labels)
  assert int(state["step"]) == 2 * STEPS_PER_EPOCH
  # The check is live: another batch shape retraces the step and trips it (before compiling).
  with pytest.raises(AssertionError, match="traced > 1 times"):
    step(state, images[:32], labels[:32])
  chex.clear_trace_counter()
