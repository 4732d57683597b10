"""Design-space sweeps (`rramjax sweep`): the grid's checks, the vectorised evaluation against the
points evaluated one by one, the Pareto fronts, the outputs and resuming, and the command."""

import json
import os
import pathlib

import numpy as np
import pytest

from conftest import run_cli
from rramjax.config import load_config
from rramjax.errors import ConfigError, WorkdirError
from rramjax.sweep import expand, parse_grid, pareto_front
from rramjax.sweep import report as sweep_report
from rramjax.sweep.report import mark_fronts
from rramjax.train.step import conv_kernels

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIMIT = "crossbar.eval_limit=32"  # a one-value grid key: a fixed setting of every point


# The grid ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("texts, message", [
    ([], "needs at least one --grid"),
    (["hardware.adc_bits"], "'hardware.adc_bits' must look like KEY=V1,V2"),
    (["=4,8"], "must look like KEY=V1,V2"),
    (["hardware.adc_bits="], "--grid hardware.adc_bits: the list of values is empty"),
    (["hardware.adc_bits=4,,8"], "--grid hardware.adc_bits: an empty value"),
    (["hardware.adc_bitz=4"], "--grid hardware.adc_bitz: unknown key; the keys of hardware are"),
    (["adc_bits=4"], "--grid adc_bits: the key must be hardware.<field>"),
    (["train.batch_size=4"], "--grid train.batch_size: the key must be"),
    (["hardware.adc_bits=4.5"], "--grid hardware.adc_bits: '4.5' has the wrong type"),
    (["hardware.read_noise_lsb=0,0.0"], "--grid hardware.read_noise_lsb: value(s) 0 listed twice"),
    (["hardware.adc_bits=4", "hardware.adc_bits=8"], "--grid hardware.adc_bits is given twice"),
    (["crossbar.eval_seeds=2"], "--grid crossbar.eval_seeds: not a sweep key (pass --seeds)"),
])
def test_malformed_grid_is_a_config_error_naming_the_key(texts, message):
  with pytest.raises(ConfigError) as info:
    parse_grid(texts)
  assert message in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def base_config():
  return load_config(str(ROOT / "configs/fashion_mnist_small.py:smoke"))


@pytest.mark.parametrize("texts, message", [
    (["hardware.adc_bits=4,0"], "--grid hardware.adc_bits=0: HardwareConfig.adc_bits must be a positive"),
    (["hardware.ou_cols=8,7"], "--grid hardware.ou_cols=7: HardwareConfig.array_cols (512) must be a "
                               "multiple of ou_cols (7)"),
    (["hardware.adc_full_scale=max,huge"], "--grid hardware.adc_full_scale=huge: HardwareConfig"),
    (["mapper.scheme=pattern,diagonal"], "--grid mapper.scheme=diagonal: Config key mapper.scheme"),
    (["crossbar.eval_limit=0"], "--grid crossbar.eval_limit=0: Config key crossbar.eval_limit"),
    # Valid alone, not together: the shift-and-add's int32 limit (21 + 4 + 7 > 31).
    (["hardware.adc_bits=8,21", "hardware.cell_bits=4,1"],
     "--grid point hardware.adc_bits=21, hardware.cell_bits=1: HardwareConfig: adc_bits + the largest"),
])
def test_invalid_values_fail_before_any_work_naming_key_and_value(base_config, texts, message):
  with pytest.raises(ConfigError) as info:
    expand(parse_grid(texts), base_config)
  assert message in str(info.value) and "\n" not in str(info.value)


def test_grid_values_are_typed_and_points_cover_every_combination(base_config):
  grid = parse_grid(["hardware.read_noise_lsb=0,0.5", "hardware.adc_full_scale=max,'calibrated'",
                     "crossbar.eval_limit=None,64"])
  assert grid.values == ((0.0, 0.5), ("max", "calibrated"), (None, 64))
  assert all(isinstance(v, float) for v in grid.values[0])  # 0 and 0.0 are one row key
  points = expand(grid, base_config)
  assert len(points) == grid.size == 8
  assert [p.values for p in points] == grid.combinations()
  last = points[-1].config
  assert (last.hardware.read_noise_lsb, last.hardware.adc_full_scale, last.crossbar.eval_limit) == \
      (0.5, "calibrated", 64)
  assert last.hardware.adc_bits == base_config.hardware.adc_bits  # the rest is the run's


# Pareto fronts ----------------------------------------------------------------------------------
def test_pareto_front_of_a_hand_made_example():
  # (cost, accuracy): 1 and 3 tie (both kept); 2 is beaten by 1; 4 costs more for the best
  # accuracy (kept); 5 is beaten by 4 (cheaper), 6 by 1 (as cheap, better); 0 is the cheapest.
  costs = [1.0, 2.0, 2.5, 2.0, 4.0, 5.0, 2.0]
  accuracies = [0.50, 0.70, 0.60, 0.70, 0.90, 0.90, 0.65]
  assert pareto_front(costs, accuracies).tolist() == [0, 1, 3, 4]
  assert pareto_front([3.0], [0.1]).tolist() == [0]
  assert pareto_front([2.0, 1.0], [0.5, 0.6]).tolist() == [1]


def test_fronts_rank_rows_by_their_fine_tuned_accuracy_when_there_is_one():
  rows = [{"energy_pj": 1.0, "arrays": 2, "ou_accuracy_mean": 0.6},
          {"energy_pj": 2.0, "arrays": 1, "ou_accuracy_mean": 0.5},
          {"energy_pj": 3.0, "arrays": 3, "ou_accuracy_mean": 0.9, "hwtune_ou_accuracy_mean": 0.4}]
  mark_fronts(rows)
  assert [r["pareto_energy"] for r in rows] == [True, False, False]
  assert [r["pareto_area"] for r in rows] == [True, True, False]


# The vectorised evaluation ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def dense_run(dense_cli_run):
  workdir, out = dense_cli_run
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


@pytest.fixture(scope="module")
def evaluator(dense_run):
  from rramjax.mapper.cli import read_run_config  # pylint: disable=g-import-not-at-top
  from rramjax.sweep.evaluate import SweepEvaluator  # pylint: disable=g-import-not-at-top
  return SweepEvaluator(dense_run, read_run_config(dense_run))


def _points(evaluator, *texts):
  return expand(parse_grid([*texts, LIMIT]), evaluator.config)


def test_one_vectorised_group_equals_the_points_evaluated_one_by_one(evaluator):
  """ADC bits, full-scale mode and read noise in one compiled, vmapped evaluation: per seed the
  same accuracy as each point's own calibration and compilation (`hardware_eval`), noise drawn
  from the same keys; and an OU of 4 rows (its own group, its own calibration) likewise."""
  points = [p for p in _points(evaluator, "hardware.adc_bits=4,6", "hardware.read_noise_lsb=0,0.5",
                               "hardware.adc_full_scale=calibrated,max")
            if p.values[:3] in {(4, 0.0, "max"), (6, 0.0, "calibrated"), (6, 0.5, "calibrated")}]
  points += _points(evaluator, "hardware.ou_rows=4", "hardware.adc_bits=5",
                    "hardware.adc_full_scale=calibrated")
  setups = [evaluator.setup(p.config) for p in points]
  assert len({s.group for s in setups[:3]}) == 1 and setups[3].group != setups[0].group
  results = {}
  for indices, result in evaluator.evaluate(setups, seeds=2):
    results.update({i: result for i in indices})
  for i in (0, 2, 3):  # the noise-free calibrated point serves the noise check below
    alone = evaluator.evaluate_alone(points[i].config, seeds=2)
    assert results[i]["ou_accuracy_per_seed"] == alone["accuracy_per_seed"], points[i].values
    assert results[i]["ou_loss_mean"] == pytest.approx(alone["loss_mean"], rel=1e-5), points[i].values
  assert [results[i]["seeds"] for i in range(4)] == [1, 1, 2, 1]
  # The noise is drawn and changes the result (same ADC, same calibration).
  assert results[1]["ou_loss_mean"] != results[2]["ou_loss_mean"]
  # The 4-row OUs sum fewer rows: their calibrated ADC full scale is lower in every layer.
  rows4, rows9 = (evaluator.calibrated_state(s)["adc_full_scale"] for s in (setups[3], setups[1]))
  assert np.all(rows4 < rows9)


def test_batched_calls_give_the_accuracies_of_one_entry_per_call(evaluator, monkeypatch):
  """Calls of up to VMAP_IMAGES images (the last padded with its last entry; with the numba
  kernels a call's entries of one seed share their read-noise draws) give the accuracies per seed
  of one entry per call."""
  from rramjax.sweep import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  points = _points(evaluator, "hardware.adc_bits=4,5,6", "hardware.read_noise_lsb=0,0.5")
  setups = [evaluator.setup(p.config) for p in points]
  runs = {}
  for images in (1, 3 * 32):  # 9 entries: 9 calls of 1; then 3 calls of 3
    monkeypatch.setattr(evaluate_lib, "VMAP_IMAGES", images)
    runs[images] = {i: r["ou_accuracy_per_seed"] for idx, r in evaluator.evaluate(setups, seeds=2)
                    for i in idx}
  assert sorted(runs[1]) == list(range(6)) and runs[96] == runs[1]
  assert [len(runs[1][i]) for i in range(6)] == [1, 2, 1, 2, 1, 2]


def test_entry_order_puts_one_seed_of_a_block_of_points_in_a_call():
  from rramjax.sweep.evaluate import _chunks, _entry_order  # pylint: disable=g-import-not-at-top
  count = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2}
  entries = _entry_order(list(count), count, cap=2)
  assert sorted(entries) == sorted((u, s) for u in count for s in range(count[u]))
  assert entries[:4] == [(0, 0), (1, 0), (2, 0), (3, 0)]
  calls = _chunks(entries, 2)
  assert [sorted({s for _, s in call}) for call in calls] == [[0], [0], [1]] + [[0], [1]] * 2
  assert [sorted(u for u, _ in call) for call in calls[1:3]] == [[2, 3], [2, 3]]


def test_equal_points_are_evaluated_once_and_cost_only_keys_share_the_accuracy(evaluator):
  points = _points(evaluator, "hardware.adc_bits=5", "mapper.adc_energy_per_bit_factor=1.5,2.0",
                   "hardware.e_ou_pj=4.8,2.4")
  setups = [evaluator.setup(p.config) for p in points]
  yielded = list(evaluator.evaluate(setups, seeds=2))
  assert len(yielded) == 1 and sorted(yielded[0][0]) == [0, 1, 2, 3]


def test_the_reference_path_compiles_each_hardware_alone(evaluator):
  points = _points(evaluator, "crossbar.ou_path=reference", "hardware.adc_bits=4,6")
  setups = [evaluator.setup(p.config) for p in points]
  assert not setups[0].traced and setups[0].group != setups[1].group
  assert setups[0].hardware == points[0].config.hardware
  assert "adc_max_code" not in evaluator.values(setups[0])


def test_plans_follow_the_hardware_when_the_scheme_is_best(evaluator):
  from rramjax.train import hardware_glue  # pylint: disable=g-import-not-at-top
  best = _points(evaluator, "mapper.scheme=best", "hardware.adc_bits=4,8")
  pattern = _points(evaluator, "mapper.scheme=pattern", "hardware.adc_bits=4,8")
  plans = [hardware_glue.ou_plans(p.config, evaluator.masks, p.config.hardware) for p in best + pattern]
  assert plans[0] is not plans[1]  # 'best' reads the ADC's bits: one plan each
  assert plans[2] is plans[3]      # the pattern mapping does not


def test_hwtune_trains_the_model_at_the_point(evaluator):
  setup = evaluator.setup(_points(evaluator, "hardware.adc_bits=4",
                                  "hardware.adc_full_scale=calibrated")[0].config)
  before = np.asarray(conv_kernels(evaluator.state["params"])[1])
  tuned = evaluator.hwtune(setup, 2)
  assert int(tuned["step"]) == int(evaluator.state["step"]) + 2
  assert not np.array_equal(np.asarray(conv_kernels(tuned["params"])[1]), before)
  # The run's model is untouched (the train step donates only its copy).
  assert np.array_equal(np.asarray(conv_kernels(evaluator.state["params"])[1]), before)
  np.testing.assert_array_equal(np.asarray(tuned["hw_state"]["adc_max_code"]), 15.0)
  (indices, result), = evaluator.evaluate([setup], seeds=2, state=tuned)
  assert indices == [0] and 0.0 <= result["ou_accuracy_mean"] <= 1.0


def _layer0_stats(evaluator, setup, images, key):
  """Mean and (biased) variance over images and pixels of the first conv layer's output at `ou`:
  the input of the first batch norm, computed directly with the crossbar's conv function."""
  from rramjax.train import hardware_glue  # pylint: disable=g-import-not-at-top
  masks = evaluator.state["masks"]
  conv = hardware_glue.conv_builder("ou", setup.hardware, setup.plans, setup.config.crossbar.backend)(
      masks, evaluator.values(setup), key)
  y = np.asarray(conv(images, conv_kernels(evaluator.state["params"])[0] * masks[0], 0), np.float64)
  return y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))


def test_bn_recalibration_takes_each_layers_statistics_at_the_points_crossbar(evaluator):
  """Re-estimated statistics are the mean over the batches of each batch's statistics of the
  layer's input at the point's crossbar (checked on the first layer, computed directly); read
  noise enters them; the run's own statistics are untouched."""
  import itertools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from rramjax.train.step import BN_RECAL_KEY, stream_key  # pylint: disable=g-import-not-at-top
  quiet, noisy = (evaluator.setup(p.config) for p in _points(
      evaluator, "hardware.adc_bits=5", "hardware.read_noise_lsb=0,2.0",
      "hardware.adc_full_scale=calibrated"))
  run_stats = jax.tree_util.tree_map(np.array, evaluator.state["batch_stats"])
  batches = [images for images, _ in itertools.islice(evaluator._tune_batches(), 2)]
  key = stream_key(evaluator.state, BN_RECAL_KEY)
  direct = [_layer0_stats(evaluator, quiet, images, jax.random.fold_in(key, i))
            for i, images in enumerate(batches)]
  state = evaluator.recalibrate_bn(quiet, 2)
  norm0 = state["batch_stats"]["norms"][0]
  np.testing.assert_allclose(norm0["mean"], (direct[0][0] + direct[1][0]) / 2, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(norm0["var"], (direct[0][1] + direct[1][1]) / 2, rtol=1e-3, atol=1e-2)
  assert not np.allclose(norm0["mean"], run_stats["norms"][0]["mean"], rtol=1e-3)
  np.testing.assert_array_equal(np.asarray(state["hw_state"]["adc_max_code"]), 31.0)
  # With read noise the statistics move (noise drawn at the point's level, same batches).
  noisy_mean = np.asarray(evaluator.recalibrate_bn(noisy, 2)["batch_stats"]["norms"][0]["mean"])
  assert not np.allclose(noisy_mean, norm0["mean"], rtol=1e-4)
  # The run's model keeps its own statistics.
  jax.tree_util.tree_map(np.testing.assert_array_equal, run_stats,
                         jax.tree_util.tree_map(np.asarray, evaluator.state["batch_stats"]))
  with pytest.raises(ValueError, match="batches must be a positive integer"):
    evaluator.recalibrate_bn(quiet, 0)


# Outputs, resuming, the command -----------------------------------------------------------------
def _snapshot(folder):
  return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                for p in pathlib.Path(folder).rglob("*"))


def test_outputs_and_an_interrupted_sweep_resumes_from_its_rows(dense_run, tmp_path, monkeypatch):
  from rramjax.sweep import run_sweep  # pylint: disable=g-import-not-at-top
  out = tmp_path / "sweep"
  grid = ["hardware.adc_bits=4,8", LIMIT]
  before = _snapshot(dense_run)
  write = sweep_report.write_outputs
  calls = []

  def write_then_interrupt(*args, **kwargs):
    paths = write(*args, **kwargs)
    calls.append(1)
    raise KeyboardInterrupt

  monkeypatch.setattr(sweep_report, "write_outputs", write_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    run_sweep(dense_run, grid, out, progress=False, log=lambda *_: None, plots=False)
  monkeypatch.setattr(sweep_report, "write_outputs", write)
  first = json.loads((out / "sweep.json").read_text())["rows"]
  assert len(first) == 1 and sweep_report.rows_written(out) == 1
  lines = []
  result = run_sweep(dense_run, grid, out, progress=False, log=lines.append)
  assert result["evaluated"] == 1 and lines[0].startswith("Resuming: 1 of 2 points")
  stored = json.loads((out / "sweep.json").read_text())
  assert [r["hardware.adc_bits"] for r in stored["rows"]] == [4, 8]
  assert stored["rows"][0] == {**first[0], "pareto_energy": stored["rows"][0]["pareto_energy"],
                               "pareto_area": stored["rows"][0]["pareto_area"]}
  csv_lines = (out / "sweep.csv").read_text().splitlines()
  assert len(csv_lines) == 3 and csv_lines[0].startswith("hardware.adc_bits,crossbar.eval_limit,")
  for name in ("accuracy_vs_energy.png", "accuracy_vs_area.png", "accuracy_vs_hardware_adc_bits.png"):
    assert (out / name).stat().st_size > 0, name
  # Everything done: nothing is evaluated again.
  assert run_sweep(dense_run, grid, out, progress=False, log=lambda *_: None, plots=False)["evaluated"] == 0
  assert _snapshot(dense_run) == before  # the run folder is only read
  with pytest.raises(WorkdirError, match="another sweep .*seeds: 2 there, 3 now"):
    run_sweep(dense_run, grid, out, seeds=3, progress=False, log=lambda *_: None)
  with pytest.raises(WorkdirError, match="1 row.s. outside this grid .e.g. hardware.adc_bits=8"):
    run_sweep(dense_run, ["hardware.adc_bits=4", LIMIT], out, progress=False, log=lambda *_: None)


def test_cli_sweep_end_to_end(dense_run, tmp_path):
  out = tmp_path / "sweep"
  result = run_cli("sweep", dense_run, "--grid", "hardware.adc_bits=4,8", "--grid",
                   "hardware.read_noise_lsb=0,0.5", "--grid", LIMIT, "--seeds", "2", "--out", out,
                   "--no-progress")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "adc_bits read_noise_lsb" in result.stdout and "4 points (4 evaluated now)" in result.stdout
  rows = json.loads((out / "sweep.json").read_text())["rows"]
  assert [(r["hardware.adc_bits"], r["hardware.read_noise_lsb"], r["seeds"]) for r in rows] == [
      (4, 0.0, 1), (4, 0.5, 2), (8, 0.0, 1), (8, 0.5, 2)]
  assert all(r["examples"] == 32 and 0.0 <= r["ou_accuracy_mean"] <= 1.0 for r in rows)
  # The ADC's energy follows its resolution (x2 per bit, 1.67 pJ at 8 bits); the rest does not.
  assert rows[0]["adc_pj_per_conversion"] == pytest.approx(1.67 / 16)
  assert rows[0]["energy_adc_pj"] == pytest.approx(rows[2]["energy_adc_pj"] / 16)
  assert rows[0]["energy_rram_pj"] == rows[2]["energy_rram_pj"]
  assert any(r["pareto_energy"] for r in rows)
  for name in ("accuracy_vs_energy.png", "accuracy_vs_hardware_read_noise_lsb.png"):
    assert (out / name).is_file(), name


def test_a_sweep_with_bn_recalibration_adds_its_accuracies_and_ranks_by_them(dense_run, tmp_path):
  from rramjax.sweep import run_sweep  # pylint: disable=g-import-not-at-top
  grid = ["hardware.adc_bits=4,8", LIMIT]
  plain = run_sweep(dense_run, grid, tmp_path / "plain", progress=False, log=lambda *_: None,
                    plots=False)["rows"]
  lines = []
  rows = run_sweep(dense_run, grid, tmp_path / "bn", bn_batches=2, progress=False,
                   log=lines.append, plots=False)["rows"]
  for before, row in zip(plain, rows):  # the run's own accuracies are unchanged
    assert row["ou_accuracy_per_seed"] == before["ou_accuracy_per_seed"]
    assert row["bn_batches"] == 2 and 0.0 <= row["bn_ou_accuracy_mean"] <= 1.0
    assert 0.0 <= row["bn_ideal_accuracy"] <= 1.0 and "bn_ou_accuracy_std" in row
    assert sweep_report.accuracy(row) == row["bn_ou_accuracy_mean"]
  assert "ou%, BN re-est." in lines[0]
  assert json.loads((tmp_path / "bn" / "sweep.json").read_text())["bn_batches"] == 2
  with pytest.raises(WorkdirError, match="another sweep .*bn_batches: 2 there, 0 now"):
    run_sweep(dense_run, grid, tmp_path / "bn", progress=False, log=lambda *_: None)
  with pytest.raises(ConfigError, match="--bn-batches must be an integer >= 0"):
    run_sweep(dense_run, grid, tmp_path / "x", bn_batches=-1, progress=False)


def test_cli_bad_grid_exits_2_before_writing_anything(dense_run, tmp_path):
  out = tmp_path / "never"
  result = run_cli("sweep", dense_run, "--grid", "hardware.adc_bits=4,0", "--out", out)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip() == ("rramjax sweep: error: --grid hardware.adc_bits=0: "
                                   "HardwareConfig.adc_bits must be a positive integer, got 0.")
  assert not os.path.exists(out)
  result = run_cli("sweep", tmp_path, "--grid", "hardware.adc_bits=4", "--out", out)
  assert result.returncode == 2 and "is not a run folder" in result.stderr


def test_cli_sweep_help_lists_the_options():
  result = run_cli("sweep", "--help")
  assert result.returncode == 0, result.stderr
  for option in ("RUN_DIR", "--grid", "--hwtune-steps", "--bn-batches", "--seeds", "--out",
                 "--no-progress"):
    assert option in result.stdout
