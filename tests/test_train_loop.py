"""The training loop: exact resume after a real SIGKILL, divergence, corrupt checkpoints, masked
steps that never revive a pruned weight, and one trace per train step.

The runs use the smoke pipeline without the crossbar phase (conftest.SMOKE_OVERRIDES): 4 epochs of
4 steps (2 dense, 1 ADMM, 1 masked fine-tuning). One in-process reference run is shared.
"""

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
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, SMOKE_OVERRIDES, SMOKE_SPEC, run_once, set_args
from rramjax.config import load_config
from rramjax.errors import CheckpointError, TrainingDivergedError
from rramjax.train import hardware_glue, loop
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
  logs = []
  summary = loop.train_and_evaluate(smoke_config(), workdir, resume=True, progress=False,
                                    log=logs.append)
  assert any(f"after epoch {EPOCHS - 1}" in line for line in logs), logs
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
  assert str(tmp_path / "checkpoints") in msg and "--resume" in msg

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
  assert "Delete that folder to fall back to an earlier epoch" in msg and "without --resume" in msg


def test_restore_without_checkpoint_says_so(tmp_path):
  ckpt = Checkpointer(tmp_path / "checkpoints")
  with pytest.raises(CheckpointError, match="No checkpoint in .*start without --resume"):
    ckpt.restore({"x": jnp.zeros(2)})
  ckpt.close()


# The loop's fine-tuning step on the smoke run's state ---------------------------------------------
def _finetune(trainer):
  return next(e for e in trainer.plan if e.phase == "finetune")


def _pruned_state(trainer, tx, seed=0, keep=0.5):
  """The run's state with random 0/1 masks and the weights projected, as hard pruning leaves it."""
  state = trainer.initial_state()
  rng = np.random.default_rng(seed)
  masks = [jnp.asarray(rng.random(m.shape) < keep, jnp.float32) for m in state["masks"]]
  state = {**state, "masks": masks, "params": apply_masks(state["params"], masks)}
  state["opt_state"] = tx.init(hardware_glue.trainable(state, trainer.config))
  return state


def test_masked_training_never_revives_a_pruned_weight(trainer):
  epoch = _finetune(trainer)
  tx, step = trainer.train_step(epoch)  # Adam, the loop's fine-tuning step
  state = _pruned_state(trainer, tx)
  masks = [np.asarray(m) for m in state["masks"]]
  before = [np.asarray(k) for k in conv_kernels(state["params"])]
  for i, (images, labels) in enumerate(trainer.train_batches(epoch.index)):
    state, metrics = step(state, images, labels)
    assert np.isfinite(float(metrics["loss"]))
    for k, m in zip(conv_kernels(state["params"]), masks):
      assert np.all(np.asarray(k)[m == 0] == 0), f"a pruned weight revived at step {i + 1}"
  assert int(state["step"]) == STEPS_PER_EPOCH
  for k, k0, m in zip(conv_kernels(state["params"]), before, masks):
    assert not np.allclose(np.asarray(k)[m == 1], k0[m == 1])  # the kept weights did train
  # Adam's mu and nu of every conv kernel: the 4-D leaves of the optimizer state.
  moments = [x for x in jax.tree_util.tree_leaves(state["opt_state"]) if getattr(x, "ndim", 0) == 4]
  assert len(moments) == 2 * len(masks)
  for i, moment in enumerate(moments):
    m = masks[i % len(masks)]
    assert np.all(np.asarray(moment)[m == 0] == 0), "optimizer moments at pruned positions"
    assert np.any(np.asarray(moment)[m == 1] != 0)


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
