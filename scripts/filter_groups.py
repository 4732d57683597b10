"""How much squared weight OU-group pattern sharing loses, per layer, with the filters in the given
order, in random orders and in `prune.filter_order='greedy'`'s order (docs/MODEL.md section 8).

  python scripts/filter_groups.py RUN_DIR [--epoch N] [--random 20]
  python scripts/filter_groups.py --synthetic 512x512     # the order's time on a random layer

Reads the run's checkpoint at the end of its dense pretraining (or `--epoch`), extracts each layer's
library as ADMM would at OU-group granularity (the run's hardware sets the group size; the run's
`prune.ou_group_layers` which layers share), and prints, per layer, the share of the weight that a
kernel-granularity projection keeps which the group projection loses: given order, the mean and
best of `--random` random orders, and the greedy order, with the greedy order's time.
`--synthetic CINxCOUT` does the same for one layer of normal random weights and a random library of
8 patterns (groups of 4), to time the order at VGG16's sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from rramjax.mapper.cli import read_run_config
from rramjax.patterns import group_order, grouped_kept_energy
from rramjax.train import targets
from rramjax.train.checkpoint import Checkpointer
from rramjax.train.loop import Trainer
from rramjax.train.step import conv_kernels


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dir", nargs="?")
  parser.add_argument("--synthetic", default=None, metavar="CINxCOUT",
                      help="a random layer of this size instead of a run's")
  parser.add_argument("--epoch", type=int, default=None,
                      help="checkpoint epoch (default: the end of pretraining)")
  parser.add_argument("--random", type=int, default=20, help="random orders to compare with")
  args = parser.parse_args(argv)
  rng = np.random.default_rng(0)
  if args.synthetic:
    cin, cout = (int(n) for n in args.synthetic.lower().split("x"))
    w = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
    library = tuple(int(c) for c in rng.choice(np.arange(1, 512), 8, replace=False))
    print(f"random layer {cin}->{cout}, 8 random patterns, groups of 4 (numpy, {os.cpu_count()} cores)")
    _header()
    _row(0, w, library, 4, rng, args.random)
    return
  if not args.run_dir:
    parser.error("pass a run folder or --synthetic CINxCOUT")
  config = read_run_config(args.run_dir)
  prune = dataclasses.replace(config.prune, enabled=True, granularity="ou_group")
  config = dataclasses.replace(config, prune=prune)
  epoch = args.epoch or config.train.pretrain_epochs
  trainer = Trainer(config, args.run_dir, progress=False)
  checkpointer = Checkpointer(f"{args.run_dir}/checkpoints")
  try:
    state, _ = checkpointer.restore(trainer.initial_state(), epoch=epoch)
  finally:
    checkpointer.close()
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  libraries = targets.extract_libraries(config, kernels)
  _, groups = targets.granularity(config, kernels)
  print(f"run {args.run_dir}, checkpoint of epoch {epoch}; weight lost to sharing, as a share of "
        "what kernel-granularity projection keeps")
  _header()
  for layer, (w, lib, group) in enumerate(zip(kernels, libraries, groups)):
    _row(layer, w, lib, group, rng, args.random)


def _header():
  print(f"{'layer':>5} {'Cin->Cout':>10} {'group':>5} {'given':>7} {'random mean':>11} "
        f"{'random best':>11} {'greedy':>7} {'time s':>7}")


def _row(layer, w, lib, group, rng, random_orders):
  alone = grouped_kept_energy(w, lib, 1)
  lost = lambda order=None: 1.0 - grouped_kept_energy(w, lib, group, order) / alone  # noqa: E731
  start = time.perf_counter()
  order = group_order(w, lib, group)
  seconds = time.perf_counter() - start
  shuffled = [lost(rng.permutation(w.shape[3])) for _ in range(random_orders)]
  print(f"{layer:>5} {w.shape[2]:>4}->{w.shape[3]:<5} {group:>5} {lost():>7.2%} "
        f"{np.mean(shuffled):>11.2%} {min(shuffled):>11.2%} {lost(order):>7.2%} {seconds:>7.2f}")


if __name__ == "__main__":
  main()
