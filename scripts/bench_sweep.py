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

With --call-images A,B instead: the vectorised evaluation with calls of up to A test images
against calls of up to B (`evaluate.VMAP_IMAGES`, 8,192 in `rramjax sweep`; 1 = one entry, point x
seed, per call; with the numba kernels a call's entries of one seed share their read-noise draws),
in the order A B B A after a warm-up of both; per-seed accuracies must agree.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time

from benchmark import device_name
from rramjax.mapper.cli import read_run_config
from rramjax.sweep import expand, parse_grid
from rramjax.sweep import evaluate as evaluate_lib


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("run_dir")
  parser.add_argument("--grid", action="append", required=True)
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--call-images", default=None,
                      help="A,B: time calls of up to A test images against calls of up to B instead")
  args = parser.parse_args(argv)
  sizes = None
  if args.call_images:
    try:
      sizes = [int(v) for v in args.call_images.split(",")]
    except ValueError:
      sizes = []
    if len(sizes) != 2 or min(sizes) < 1 or sizes[0] == sizes[1]:
      parser.error(f"--call-images takes two different positive numbers A,B, got {args.call_images!r}")
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

  if sizes:
    return _call_sizes(evaluator, points, args.seeds, sizes)

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
  print(f"device: {device_name()}")
  evaluations = sum(r["seeds"] for r in vectorised.values())
  print(f"{n} points, {evaluations} evaluations of {vectorised[0]['examples']} test images, "
        f"{groups} compile group(s)")
  print(f"vectorised: {t_vec:.1f} s ({t_vec / n:.2f} s per point)")
  print(f"one by one: {t_one:.1f} s ({t_one / n:.2f} s per point)")
  print(f"ratio: {t_one / t_vec:.2f}x less time per point vectorised; per-seed accuracies "
        + ("equal" if not mismatch else f"DIFFER at {mismatch}"))


def _call_sizes(evaluator, points, seeds, sizes):
  setups = [evaluator.setup(p.config) for p in points]
  shipped = evaluate_lib.VMAP_IMAGES

  @contextlib.contextmanager
  def calls(images):
    evaluate_lib.VMAP_IMAGES = images
    try:
      yield
    finally:
      evaluate_lib.VMAP_IMAGES = shipped

  for images in sizes:  # warm-up: both call sizes compiled
    with calls(images):
      list(evaluator.evaluate(setups[:2] + setups[-2:], seeds))
  times, results = {images: [] for images in sizes}, {}
  for images in sizes + sizes[::-1]:
    with calls(images):
      start = time.perf_counter()
      result = {i: r["ou_accuracy_per_seed"] for idx, r in evaluator.evaluate(setups, seeds)
                for i in idx}
      seconds = time.perf_counter() - start
    results.setdefault(images, result)
    times[images].append(seconds)
    print(f"calls of up to {images} images: {seconds:.1f} s, peak memory so far "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB", flush=True)
  a, b = sizes
  print(f"{len(points)} points; {a} images per call {sum(times[a]) / 2:.1f} s, {b} images per call "
        f"{sum(times[b]) / 2:.1f} s (mean of 2); per-seed accuracies "
        + ("equal" if results[a] == results[b] else "DIFFER"))


if __name__ == "__main__":
  main()
