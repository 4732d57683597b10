"""Times mapping pattern-pruned VGG16 (13 conv layers, CIFAR-10 shape) and logs it to docs/BENCHMARKS.md.

Usage:
  .venv/bin/python scripts/bench_mapper.py [--repeats 5] [--no-write]

Measures `map_network` (blocks, tiles, first-fit-decreasing placement and costs for all 13 layers)
on the paper-shaped CIFAR-10 masks of scripts/paper_vgg16.py; mask generation is not timed. Goal:
under 1 s on the 2-core dev CPU. Prints the best and median of `--repeats` runs, the CPU model and
the date, and appends one row to docs/BENCHMARKS.md (created with a header if missing; append only).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_crossbar import append_rows  # noqa: E402  (sibling scripts)
from benchmark import device_name  # noqa: E402
from paper_vgg16 import POOL_AFTER, paper_masks  # noqa: E402

from rramjax.hardware.config import HardwareConfig  # noqa: E402
from rramjax.mapper import map_network, pooled_out_hw  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def time_mapping(repeats: int) -> list[float]:
  masks = paper_masks("cifar10", seed=0)
  out_hw = pooled_out_hw(len(masks), 32, POOL_AFTER)
  hw = HardwareConfig()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    map_network(masks, out_hw, hw)
    seconds.append(time.perf_counter() - start)
  return seconds


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
  args = parser.parse_args(argv)
  seconds = time_mapping(args.repeats)
  device, today = device_name(), datetime.date.today().isoformat()
  result = f"best {min(seconds):.3f} s, median {float(np.median(seconds)):.3f} s ({args.repeats} runs; goal < 1 s)"
  print(f"map_network, VGG16 CIFAR-10 masks (13 conv layers): {result}\ndevice: {device}\ndate: {today}")
  if not args.no_write:
    append_rows(os.path.join(REPO, "docs", "BENCHMARKS.md"),
                [f"| {today} | mapper: `map_network` VGG16 (13 conv, CIFAR-10 masks, 86% sparse) | "
                 f"{device} | {result} | `.venv/bin/python scripts/bench_mapper.py` |\n"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
