"""Times a sweep's vectorised evaluation against the same points evaluated one by one.

  .venv/bin/python scripts/bench_sweep.py runs/sweep_base --grid hardware.adc_bits=4,5,6,7,8 \
      --grid hardware.read_noise_lsb=0,0.25,0.5,1.0 --seeds 2

In one process, after a warm-up (data, checkpoint, the ideal evaluation, the numba kernels):
  vectorised  the grid's points through `SweepEvaluator.evaluate`: one calibration and one compiled,
              vmapped evaluation per compile group (what `rramjax sweep` does);
  one by one  each point through `SweepEvaluator.evaluate_alone`: its own calibration and its own
              compiled evaluation (`hardware_glue.calibrate` + `hardware_eval`), as a script that
              loops over hardware configs does.
Both include compilation and calibration; per-seed accuracies must agree exactly. Prints the time
per point of each and their ratio.

With --chunking instead: the vectorised evaluation with one entry (point x seed) per vmapped call
against calls of up to `VMAP_IMAGES` images (what `rramjax sweep` makes: with the numba kernels a
call's entries of one seed share their read-noise draws), in the order A B B A after a warm-up of
both; per-seed accuracies must agree.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from rramjax.mapper.cli import read_run_config
from rramjax.sweep import expand, parse_grid
from rramjax.sweep import evaluate as evaluate_lib


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("run_dir")
  parser.add_argument("--grid", action="append", required=True)
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--chunking", action="store_true",
                      help="time one entry per call against batched calls instead")
  args = parser.parse_args(argv)
  config = read_run_config(args.run_dir)
  points = expand(parse_grid(args.grid), config)
  evaluator = evaluate_lib.SweepEvaluator(args.run_dir, config)
  # Warm-up: what both ways share (the ideal model's evaluation, the calibration's input pass,
  # the kernels' first call) is paid here, then the caches both would reuse are emptied.
  warm = evaluator.setup(config)
  evaluator.ideal_accuracy(config.crossbar.eval_limit)
  evaluator.calibrated_state(warm)
  evaluator._calibrations.clear()  # pylint: disable=protected-access
  evaluate_lib._vmapped_eval.cache_clear()  # pylint: disable=protected-access

  if args.chunking:
    return _chunking(evaluator, points, args.seeds)

  start = time.perf_counter()
  setups = [evaluator.setup(p.config) for p in points]
  vectorised = {}
  for indices, result in evaluator.evaluate(setups, args.seeds):
    vectorised.update({i: result for i in indices})
  t_vec = time.perf_counter() - start
  groups = len({s.group for s in setups})

  start = time.perf_counter()
  alone = [evaluator.evaluate_alone(p.config, args.seeds) for p in points]
  t_one = time.perf_counter() - start

  mismatch = [p.values for i, p in enumerate(points)
              if vectorised[i]["ou_accuracy_per_seed"] != alone[i]["accuracy_per_seed"]]
  n = len(points)
  evaluations = sum(r["seeds"] for r in vectorised.values())
  print(f"{n} points, {evaluations} evaluations of {vectorised[0]['examples']} test images, "
        f"{groups} compile group(s)")
  print(f"vectorised: {t_vec:.1f} s ({t_vec / n:.2f} s per point)")
  print(f"one by one: {t_one:.1f} s ({t_one / n:.2f} s per point)")
  print(f"ratio: {t_one / t_vec:.2f}x less time per point vectorised; per-seed accuracies "
        + ("equal" if not mismatch else f"DIFFER at {mismatch}"))


def _chunking(evaluator, points, seeds):
  setups = [evaluator.setup(p.config) for p in points]
  shipped = evaluate_lib.VMAP_IMAGES

  @contextlib.contextmanager
  def calls(batched):
    """Calls of up to VMAP_IMAGES images, or of one entry each."""
    evaluate_lib.VMAP_IMAGES = shipped if batched else 1
    try:
      yield
    finally:
      evaluate_lib.VMAP_IMAGES = shipped

  for batched in (True, False):  # warm-up: both call sizes compiled
    with calls(batched):
      list(evaluator.evaluate(setups[:2], seeds))
  times, results = {True: [], False: []}, {}
  for batched in (True, False, False, True):
    with calls(batched):
      start = time.perf_counter()
      results[batched] = {i: r["ou_accuracy_per_seed"]
                          for idx, r in evaluator.evaluate(setups, seeds) for i in idx}
      seconds = time.perf_counter() - start
    times[batched].append(seconds)
    print(f"{'batched calls' if batched else 'one entry per call'}: {seconds:.1f} s", flush=True)
  print(f"{len(points)} points; batched {sum(times[True]) / 2:.1f} s, one entry per call "
        f"{sum(times[False]) / 2:.1f} s (mean of 2); per-seed accuracies "
        + ("equal" if results[True] == results[False] else "DIFFER"))


if __name__ == "__main__":
  main()
