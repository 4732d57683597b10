"""2x2 max pooling: `rramjax.ops.max_pool2x2` against `flax.nnx.max_pool`, in the same run.

Usage:
  python scripts/bench_pool.py            # appends to docs/BENCHMARKS.md
  python scripts/bench_pool.py --smoke    # tiny sizes, prints only

Forward and backward (the gradient of a sum of squares), jitted, at the three pooling inputs of
the small VGG at width 0.5 and batch 128 (16 channels at 28x28, 32 at 14x14, 64 at 7x7); median
wall time over repeats, after one compile run. Both give the same values (checked here).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_crossbar import _median_ms, append_rows  # pylint: disable=g-import-not-at-top
from benchmark import device_name  # pylint: disable=g-import-not-at-top

from rramjax.ops import max_pool2x2


def _flax_pool(x):
  return nnx.max_pool(x, (2, 2), strides=(2, 2))


def bench(shapes, repeats):
  """(ms of max_pool2x2, ms of nnx.max_pool), summed over `shapes`, forward and backward."""
  ours = theirs = 0.0
  for shape in shapes:
    x = jnp.asarray(np.random.default_rng(0).random(shape), jnp.float32)
    np.testing.assert_array_equal(max_pool2x2(x), _flax_pool(x))
    for pool, add in ((max_pool2x2, True), (_flax_pool, False)):
      fn = jax.jit(jax.grad(lambda x, pool=pool: jnp.sum(pool(x) ** 2)))
      ms = _median_ms(fn, (x,), repeats)
      if add:
        ours += ms
      else:
        theirs += ms
  return ours, theirs


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--no-append", action="store_true")
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs/BENCHMARKS.md"))
  args = parser.parse_args()
  device, date = device_name(), datetime.date.today().isoformat()
  print(f"date {date}, device {device}, jax {jax.__version__}")
  batch = 4 if args.smoke else 128
  shapes = [(batch, 28, 28, 16), (batch, 14, 14, 32), (batch, 7, 7, 64)]
  ours, theirs = bench(shapes, args.repeats)
  print(f"2x2 max pooling fwd+bwd, small VGG width 0.5 shapes, batch {batch}: max_pool2x2 "
        f"{ours:.2f} ms, nnx.max_pool {theirs:.2f} ms ({theirs / ours:.1f}x)")
  row = (f"| {date} | 2x2 max pooling fwd+bwd (jitted gradient of a sum of squares), the small VGG's "
         f"three pooling inputs at width 0.5, batch {batch}, jax {jax.__version__} | {device} | "
         f"ops.max_pool2x2 (reshape + max) {ours:.2f} ms; flax nnx.max_pool (reduce_window) "
         f"{theirs:.2f} ms ({theirs / ours:.1f}x) | `python scripts/bench_pool.py` |\n")
  if not (args.smoke or args.no_append):
    append_rows(args.out, [row])


if __name__ == "__main__":
  main()
