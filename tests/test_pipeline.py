"""The whole pipeline on real Fashion-MNIST (smoke sizes): prune, fine-tune with the crossbar, map."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from rramjax import patterns
from rramjax.config import load_config
from rramjax.errors import ConfigError
from rramjax.mapper import load_mask_file
from rramjax.train import report, targets, train_and_evaluate
from rramjax.train.checkpoint import Checkpointer
from rramjax.train.loop import Trainer, epoch_plan
from rramjax.train.step import conv_kernels

SMOKE = "configs/fashion_mnist_small.py:smoke"
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("pipeline")
  config = load_config(str(ROOT / SMOKE))
  summary = train_and_evaluate(config, workdir, progress=False, log=lambda *_: None)
  trainer = Trainer(config, workdir, progress=False)
  ckpt = Checkpointer(workdir / "checkpoints")
  state, meta = ckpt.restore(trainer.template)
  ckpt.close()
  return config, workdir, summary, state, meta


def test_plan_has_every_phase_in_order():
  config = load_config(str(ROOT / SMOKE))
  plan = epoch_plan(config, steps_per_epoch=8)
  assert [e.phase for e in plan] == ["pretrain", "pretrain", "admm", "finetune", "hwtune"]
  assert plan[-1].steps == config.train.hwtune_steps
  assert [e.index for e in plan] == list(range(len(plan)))


def test_every_kernel_is_one_library_pattern_or_removed(smoke_run):
  config, _, summary, state, meta = smoke_run
  assert meta["phase"] == "hwtune"
  for layer, (w, m, lib) in enumerate(zip(conv_kernels(state["params"]), state["masks"],
                                          state["libraries"])):
    w, m = np.asarray(w), np.asarray(m)
    library = set(targets.library_codes(lib))
    assert 1 <= len(library) <= 8, layer
    codes = np.asarray(patterns.pattern_codes(m)).reshape(-1)
    assert set(codes[codes > 0].tolist()) <= library, layer
    assert np.all(w[m == 0] == 0), f"layer {layer}: a pruned weight is nonzero"
  sparsity = summary["pruning"]["overall_sparsity"]
  assert abs(sparsity - config.prune.sparsity) < 0.03, sparsity


def test_hardware_state_calibrated_and_evaluated(smoke_run):
  config, workdir, summary, state, _ = smoke_run
  assert int(state["hw_calibrated"]) == 1
  scales = np.asarray(state["hw_state"]["act_scale"])
  assert scales[0] == 1.0 and np.all(scales > 0) and np.any(scales[1:] != 1.0)
  rows = summary["hardware"]
  bn = report.BN_MODEL
  assert [(r["model"], r["fidelity"], r["read_noise_lsb"]) for r in rows] == [
      ("before hwtune", "ideal", 0.0), ("final", "ideal", 0.0), ("final", "ou", 0.0),
      ("final", "ou", 0.5), (bn, "ideal", 0.0), (bn, "ou", 0.0), (bn, "ou", 0.5)]
  assert len({r["examples"] for r in rows}) == 1  # every row on the same test examples
  seeds = config.crossbar.eval_seeds
  assert [r["seeds"] for r in rows] == [1, 1, 1, seeds, 1, 1, seeds]
  assert len(rows[3]["accuracy_per_seed"]) == seeds
  assert [r.get("bn_batches") for r in rows[4:]] == [config.crossbar.eval_bn_batches] * 3
  assert f"'{bn}' = the final model" in summary["hardware_table"]
  assert "vs ref" in summary["hardware_table"]
  # The reference row is the model at the end of masked fine-tuning (the ideal pruned model):
  # on the whole (smoke) test set it scores what that epoch's record says.
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  finetune_end = [r for r in records if r.get("phase") == "finetune" and "test_accuracy" in r][-1]
  assert rows[0]["accuracy_mean"] == pytest.approx(finetune_end["test_accuracy"], abs=1e-6)
  for r in rows:
    assert 0.0 <= r["accuracy_mean"] <= 1.0


def _first_norm_stats(y):
  y = np.asarray(y, np.float64)
  return y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))


def test_report_reestimates_batch_norm_statistics_at_each_rows_crossbar(smoke_run):
  """The report's re-estimated rows: each batch norm's statistics become the mean over
  `crossbar.eval_bn_batches` training batches (those after the run's last epoch) of each batch's
  statistics at the row's fidelity (checked on the first layer, computed directly with the conv
  functions), read noise drawn from the batch's key; the final model's own rows are unchanged."""
  import itertools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from rramjax.ops import conv3x3  # pylint: disable=g-import-not-at-top
  from rramjax.train import hardware_glue  # pylint: disable=g-import-not-at-top
  from rramjax.train.step import BN_RECAL_KEY, stream_key  # pylint: disable=g-import-not-at-top
  config, workdir, summary, state, _ = smoke_run
  trainer = Trainer(config, workdir, progress=False)
  count = config.crossbar.eval_bn_batches
  assert count == 2
  run_stats = jax.tree_util.tree_map(np.array, state["batch_stats"])
  epoch = len(trainer.plan)
  batches = [images for images, _ in itertools.islice(trainer.train_batches(epoch), count)]
  kernel0 = conv_kernels(state["params"])[0] * state["masks"][0]
  key = stream_key(state, BN_RECAL_KEY)
  hw = config.hardware.replace(read_noise_lsb=0.5)
  ou_conv = hardware_glue.conv_builder("ou", hw, hardware_glue.ou_plans(config, state["masks"], hw),
                                       config.crossbar.backend)
  for fidelity, direct in (
      ("ideal", lambda x, i: conv3x3(x, kernel0)),
      ("ou", lambda x, i: ou_conv(state["masks"], state["hw_state"],
                                  jax.random.fold_in(key, i))(x, kernel0, 0))):
    stats = [_first_norm_stats(direct(x, i)) for i, x in enumerate(batches)]
    norm0 = trainer.reestimate_bn(state, fidelity, hw)["batch_stats"]["norms"][0]
    np.testing.assert_allclose(norm0["mean"], (stats[0][0] + stats[1][0]) / 2, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(norm0["var"], (stats[0][1] + stats[1][1]) / 2, rtol=1e-3, atol=1e-2)
    assert not np.allclose(norm0["mean"], run_stats["norms"][0]["mean"], rtol=1e-3)
  jax.tree_util.tree_map(np.testing.assert_array_equal, run_stats,
                         jax.tree_util.tree_map(np.asarray, state["batch_stats"]))
  # The rows: re-estimation then the row's evaluation, the final model's rows as without it.
  row = report.hardware_rows(config, state, None, trainer.hardware_eval, trainer.reestimate_bn)
  assert [r["accuracy_per_seed"] for r in row] == [
      r["accuracy_per_seed"] for r in summary["hardware"][1:]]
  bare = dataclasses.replace(config, crossbar=dataclasses.replace(config.crossbar,
                                                                  eval_bn_batches=0))
  assert [r["model"] for r in report.hardware_rows(bare, state, None, trainer.hardware_eval)] == \
      ["final"] * 3
  with pytest.raises(ValueError, match="eval_bn_batches > 0 needs a `reestimate`"):
    report.hardware_rows(config, state, None, trainer.hardware_eval)


def test_outputs_for_the_mapper_and_the_reader(smoke_run):
  _, workdir, summary, state, _ = smoke_run
  names, masks, out_hw = load_mask_file(workdir / "masks.npz")
  assert len(masks) == len(state["masks"])
  for saved, live in zip(masks, state["masks"]):
    np.testing.assert_array_equal(saved, np.asarray(live) != 0)
  assert out_hw[:, 0].tolist() == [28, 28, 14, 14, 7, 7]
  stored = json.loads((workdir / "summary.json").read_text())
  assert stored["pruning"]["pattern_counts"] == summary["pruning"]["pattern_counts"]
  assert (workdir / "pattern_libraries.png").stat().st_size > 0
  mapping = json.loads((workdir / "mapping.json").read_text())
  assert mapping["totals"]["pattern"]["arrays"] <= mapping["totals"]["baseline"]["arrays"]
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert any("admm_pattern_residual" in r for r in records)
  ends = summary["phase_end_accuracy"]
  assert list(ends) == ["pretrain", "admm", "finetune", "hwtune"]
  for phase, acc in ends.items():
    assert acc == [r for r in records if r.get("phase") == phase and "test_accuracy" in r][-1][
        "test_accuracy"]
  from rramjax.train.report import format_summary  # pylint: disable=g-import-not-at-top
  assert f"pretrain (dense) {100 * ends['pretrain']:.2f}%" in format_summary(summary)


def test_map_from_run_folder(smoke_run, tmp_path, capsys):
  from rramjax.cli import main  # pylint: disable=g-import-not-at-top
  _, workdir, summary, _, _ = smoke_run
  assert main(["map", str(workdir), "--out", str(tmp_path)]) == 0
  report = json.loads((tmp_path / "mapping.json").read_text())
  stored = json.loads(json.dumps(summary["mapping"]["totals"]))
  for part in ("baseline", "pattern", "ratios"):  # the run's scheme (pattern) as the run reported it
    assert report["totals"][part] == stored[part], part
  assert report["schemes"] == ["pattern", "packed", "best"]  # and the others beside it
  assert "conv total" in capsys.readouterr().out
  assert not (tmp_path / "masks.npz").exists()  # the run's own masks.npz, not a re-export


def test_map_from_unfinished_run_exports_the_checkpoint_masks(smoke_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  from rramjax.cli import main  # pylint: disable=g-import-not-at-top
  _, workdir, _, state, _ = smoke_run
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  (run / "masks.npz").unlink()
  assert main(["map", str(run), "--out", str(tmp_path / "out")]) == 0
  names, masks, out_hw = load_mask_file(tmp_path / "out" / "masks.npz")
  for saved, live in zip(masks, state["masks"]):
    np.testing.assert_array_equal(saved, np.asarray(live) != 0)
  assert out_hw[:, 0].tolist() == [28, 28, 14, 14, 7, 7]


@pytest.mark.parametrize("override, message", [
    ("prune.patterns_per_layer=[8, 8]", "patterns_per_layer has 2 entries"),
    ("prune.patterns_per_layer=600", "1..511"),
    ("prune.keep_ratios=1.5", "keep_ratios"),
    ("prune.keep_ratios=[0.5, 0.5, 0.5]", "keep_ratios has 3 entries"),
    ("train.finetune_epochs=0", "finetune_epochs"),
])
def test_bad_pruning_targets_fail_before_training(override, message):
  with pytest.raises(ConfigError, match=message):
    config = load_config(str(ROOT / SMOKE), [override])
    Trainer(config, "/tmp/unused", progress=False)
