"""`run_sweep`: every grid point of a run evaluated (accuracy) and mapped (cost), rows written as
they finish, plots at the end; an interrupted sweep resumes from the rows in its folder."""

from __future__ import annotations

import hashlib
import json
import pathlib
import time

from tqdm.auto import tqdm

from rramjax.errors import ConfigError, WorkdirError
from rramjax.mapper.cli import RUN_CONFIG, is_run_folder, read_run_config
from rramjax.paths import check_output_dir
from rramjax.sweep import grid as grid_lib
from rramjax.sweep import report


def _header(run_dir, config, grid, seeds: int, hwtune_steps: int, bn_batches: int) -> dict:
  """What identifies a sweep (`report.read_done` compares it): the run's config and checkpoint,
  the grid's keys, the seeds, the fine-tuning steps and the batch-norm re-estimation batches."""
  from rramjax.train.workdir import checkpoint_epochs  # pylint: disable=g-import-not-at-top
  text = json.dumps(config.to_dict(), sort_keys=True, default=str)
  epochs = checkpoint_epochs(run_dir)
  return {"schema": report.SCHEMA, "run_dir": str(run_dir),
          "run": {"name": config.name, "config_sha1": hashlib.sha1(text.encode()).hexdigest(),
                  "checkpoint_epoch": epochs[-1] if epochs else None},
          "grid_keys": list(grid.keys), "grid": grid.to_dict(), "seeds": seeds,
          "hwtune_steps": hwtune_steps, "bn_batches": bn_batches}


def _check_args(run_dir, seeds, hwtune_steps, bn_batches):
  if not is_run_folder(run_dir):
    raise WorkdirError(f"{str(run_dir)!r} is not a run folder (no {RUN_CONFIG}): pass the "
                       "--workdir of a run made by `rramjax run`.")
  if seeds is not None and (not isinstance(seeds, int) or seeds < 1):
    raise ConfigError(f"--seeds must be a positive integer, got {seeds!r}.")
  if not isinstance(hwtune_steps, int) or hwtune_steps < 0:
    raise ConfigError(f"--hwtune-steps must be an integer >= 0, got {hwtune_steps!r}.")
  if isinstance(bn_batches, bool) or not isinstance(bn_batches, int) or bn_batches < 0:
    raise ConfigError(f"--bn-batches must be an integer >= 0, got {bn_batches!r}.")


def prepare(run_dir, grid_texts, out, *, seeds=None, hwtune_steps: int = 0, bn_batches: int = 0):
  """Every check of a sweep, before any work: --out, the run folder, the grid, the settings and
  the rows already in --out.

  Returns:
    (config, grid, points, header, done): the run's config, the grid, its points (validated), the
    sweep's header and the rows already written (by grid values).

  Raises:
    WorkdirError, ConfigError: with a one-line message naming what to change.
  """
  check_output_dir(out, "--out")
  _check_args(run_dir, seeds, hwtune_steps, bn_batches)
  config = read_run_config(run_dir)
  grid = grid_lib.parse_grid(grid_texts)
  points = grid_lib.expand(grid, config)
  seeds = config.crossbar.eval_seeds if seeds is None else seeds
  header = _header(run_dir, config, grid, seeds, hwtune_steps, bn_batches)
  return config, grid, points, header, report.read_done(out, header, grid)


def run_sweep(run_dir, grid_texts, out, *, seeds: int | None = None, hwtune_steps: int = 0,
              bn_batches: int = 0, progress: bool = True, log=print, datasets=None,
              plots: bool = True) -> dict:
  """Runs a design-space sweep of a trained run (`rramjax sweep`).

  For each grid point: the run's newest model at 'ou' (noise over `seeds` seeds: mean and std;
  ADC full scale recalibrated for the point's OUs where the mode is 'calibrated'), optionally after
  `hwtune_steps` steps of fine-tuning at the point, and the run's mapping at the point's hardware
  (arrays, energy by component, latency, ratios vs the baseline). Points of one compile group run
  vectorised (`rramjax.sweep.evaluate`).

  Args:
    run_dir: a run folder (`rramjax run --workdir`); read only.
    grid_texts: the `--grid KEY=V1,V2,...` texts.
    out: the output folder (sweep.json, sweep.csv, plots); rows already there are kept (resume).
    seeds: noise seeds per noisy point (default: the run's `crossbar.eval_seeds`).
    hwtune_steps: hardware fine-tuning steps per point (0: none).
    bn_batches: also evaluate the run's model with its batch-norm statistics re-estimated at each
      point over this many training batches (`SweepEvaluator.recalibrate_bn`; 0: not).
    progress: show a progress bar over points.
    log: called with each line of the report.
    datasets: replaces the run's data set (`Trainer`), e.g. a small set in tests.
    plots: write the PNG figures.

  Returns:
    `{"rows": [...], "files": [...], "evaluated": points evaluated now, "seconds": ...}`.
  """
  start = time.time()
  config, grid, points, header, done = prepare(run_dir, grid_texts, out, seeds=seeds,
                                               hwtune_steps=hwtune_steps, bn_batches=bn_batches)
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  pending = [p for p in points if p.values not in done]
  if done:
    log(f"Resuming: {len(done)} of {len(points)} points already in {out / report.JSON_FILE}.")
  if pending:
    _evaluate_pending(run_dir, config, grid, points, pending, header, done, out,
                      progress=progress, datasets=datasets)
  rows = [done[p.values] for p in points]
  files = report.write_outputs(out, header, rows)
  if plots:
    from rramjax.sweep.plots import plot_sweep  # pylint: disable=g-import-not-at-top
    files += plot_sweep(grid, rows, out)
  log(report.format_table(grid, rows))
  seconds = time.time() - start
  log(f"\n{len(points)} points ({len(pending)} evaluated now) in {seconds:.1f} s; wrote "
      + ", ".join(files))
  return {"rows": rows, "files": files, "evaluated": len(pending), "seconds": seconds}


def _evaluate_pending(run_dir, config, grid, points, pending, header, done, out, *, progress,
                      datasets):
  from rramjax.sweep.evaluate import SweepEvaluator  # pylint: disable=g-import-not-at-top
  from rramjax.train.export import run_out_hw  # pylint: disable=g-import-not-at-top
  evaluator = SweepEvaluator(run_dir, config, datasets=datasets)
  out_hw = run_out_hw(config)
  costs = {}
  setups = [evaluator.setup(p.config) for p in pending]
  seeds, steps, bn_batches = header["seeds"], header["hwtune_steps"], header["bn_batches"]
  bar = tqdm(total=len(points), initial=len(points) - len(pending), disable=not progress,
             desc="sweep", unit="point")

  def finish(point, result):
    c = point.config
    key = (c.hardware, c.mapper)
    if key not in costs:
      costs[key] = report.point_costs(evaluator.masks, out_hw, c)
    limit = c.crossbar.eval_limit
    done[point.values] = {**dict(zip(grid.keys, point.values)),
                          "ideal_accuracy": evaluator.ideal_accuracy(limit), **result, **costs[key]}
    report.write_outputs(out, header, [done[p.values] for p in points if p.values in done])
    bar.update(1)

  try:
    results = evaluator.evaluate(setups, seeds)
    if not steps and not bn_batches:
      for indices, result in results:
        for i in indices:
          finish(pending[i], result)
      return
    untuned = {i: result for indices, result in results for i in indices}
    bn_ideal = None
    for i, (point, setup) in enumerate(zip(pending, setups)):
      row = dict(untuned[i])
      limit = setup.config.crossbar.eval_limit
      if bn_batches:
        bar.set_description(f"sweep (batch norm, {bn_batches} batches)")
        recalibrated = evaluator.recalibrate_bn(setup, bn_batches)
        _, result = next(evaluator.evaluate([setup], seeds, state=recalibrated))
        if bn_ideal is None:  # the run's model at 'ideal' with statistics of digital convolutions
          bn_ideal = evaluator.ideal_accuracy(
              limit, evaluator.recalibrate_bn(setup, bn_batches, fidelity="ideal"))
        row.update({"bn_batches": bn_batches, "bn_ideal_accuracy": bn_ideal,
                    **{f"bn_{k}": v for k, v in result.items() if k.startswith("ou_")}})
      if steps:
        bar.set_description(f"sweep (hwtune {steps} steps)")
        tuned = evaluator.hwtune(setup, steps)
        _, result = next(evaluator.evaluate([setup], seeds, state=tuned))
        row.update({"hwtune_steps": steps,
                    "hwtune_ideal_accuracy": evaluator.ideal_accuracy(limit, tuned),
                    **{f"hwtune_{k}": v for k, v in result.items() if k.startswith("ou_")}})
      finish(point, row)
  finally:
    bar.close()
