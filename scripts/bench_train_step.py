"""Train-step and eval throughput of a config's model at each fidelity (images/s), one device.

  python scripts/bench_train_step.py configs/fashion_mnist_small.py [--steps 10] [--set k=v ...]

Times the jitted, donated train step the pipeline uses (masks applied, masked gradients) at
'ideal', 'quant' and 'ou' after one warm-up (compile) step, and the eval step; prints one
BENCHMARKS.md row per fidelity with the ratio to 'ideal' measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time

import jax
import numpy as np

from rramjax.config import load_config
from rramjax.train import hardware_glue
from rramjax.train.loop import Trainer


def _time(fn, repeats):
  out = fn()
  jax.block_until_ready(out)  # compile + warm-up
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("config")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--fidelities", default="ideal,quant,ou")
  parser.add_argument("--set", dest="overrides", action="append", default=[])
  args = parser.parse_args(argv)
  base = load_config(args.config, args.overrides)
  device = jax.devices()[0]
  where = f"{device.device_kind} ({platform.processor() or platform.machine()})"
  results = {}
  for fidelity in args.fidelities.split(","):
    config = load_config(args.config, args.overrides + [
        "train.pretrain_epochs=0", "train.admm_epochs=0", "train.finetune_epochs=0",
        "train.hwtune_epochs=1", f"crossbar.train_fidelity='{fidelity}'", "prune.enabled=False"])
    trainer = Trainer(config, "/tmp/rramjax_bench", progress=False)
    epoch = trainer.plan[-1]
    tx, step = trainer.train_step(epoch)
    state = trainer.calibrate(trainer.initial_state())
    state = {**state, "opt_state": tx.init(hardware_glue.trainable(state, config))}
    images, labels = next(iter(trainer.train_batches(0)))
    box = {"state": state}

    def train():
      box["state"], metrics = step(box["state"], images, labels)
      return metrics

    eval_step = trainer.eval_step(fidelity)
    valid = np.ones(len(labels), bool)
    key = jax.random.key(0)
    t_train = _time(train, args.steps)
    t_eval = _time(lambda: eval_step(box["state"], images, labels, valid, key), args.steps)
    results[fidelity] = (len(labels) / t_train, len(labels) / t_eval)
  date = datetime.date.today().isoformat()
  jaxv = jax.__version__
  cmd = " ".join(["python", *sys.argv])
  for fidelity, (train_ips, eval_ips) in results.items():
    ratio = train_ips / results["ideal"][0] if "ideal" in results else float("nan")
    print(f"| {date} | train step {fidelity}: {base.model.name} width {base.model.width}, "
          f"batch {base.train.batch_size}, jax {jaxv} | {where} | train {train_ips:.0f} img/s "
          f"({ratio:.3f}x ideal), eval {eval_ips:.0f} img/s | `{cmd}` |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
