"""Read noise: `faults.fast_normal` against `jax.random.normal` (threefry), in the same run.

Usage:
  python scripts/bench_read_noise.py            # appends to docs/BENCHMARKS.md
  python scripts/bench_read_noise.py --smoke    # tiny sizes, prints only

Rows: (1) one draw of 2^23 standard-normal float32 values, jitted; (2) one 'ou' conv layer
forward with 0.5 LSB read noise (a noise draw per OU sum) with the crossbar's noise generator as
shipped (fast_normal) and with it replaced by `jax.random.normal` for this measurement, and the
same layer without read noise. Median wall time over repeats, after one compile run.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
from unittest import mock

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_crossbar import _inputs, _median_ms, append_rows  # pylint: disable=g-import-not-at-top
from benchmark import device_name  # pylint: disable=g-import-not-at-top

from rramjax.hardware import HardwareConfig, crossbar, fast_normal, init_hw_state, make_conv_fn


def _threefry_normal(key, shape):
  return jax.random.normal(key, shape, jnp.float32)


def bench_draw(n, repeats):
  key = jax.random.key(0)
  fast = _median_ms(jax.jit(lambda k: fast_normal(k, (n,))), (key,), repeats)
  slow = _median_ms(jax.jit(lambda k: _threefry_normal(k, (n,))), (key,), repeats)
  return fast, slow


def bench_layer(batch, size, cin, cout, repeats):
  x, kernel, mask = _inputs(batch, size, cin, cout)
  hw = HardwareConfig(read_noise_lsb=0.5)
  state = init_hw_state(1, hw)
  state["act_scale"] = jnp.full((1,), float(jnp.max(x)))

  def timed(noise_key):
    fn = jax.jit(lambda x, k, m, key: make_conv_fn("ou", hw, state, key)(x, k, m, 0))
    return _median_ms(fn, (x, kernel, mask, noise_key), repeats)

  fast = timed(jax.random.key(1))
  with mock.patch.object(crossbar, "fast_normal", _threefry_normal):
    slow = timed(jax.random.key(1))
  noiseless = _median_ms(jax.jit(lambda x, k, m: make_conv_fn("ou", hw.replace(read_noise_lsb=0.0), state)(
      x, k, m, 0)), (x, kernel, mask), repeats)
  return fast, slow, noiseless


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--no-append", action="store_true")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs/BENCHMARKS.md"))
  args = parser.parse_args()
  device, date = device_name(), datetime.date.today().isoformat()
  print(f"date {date}, device {device}, jax {jax.__version__}")
  n = 2**12 if args.smoke else 2**23
  layer = (4, 8, 8, 8) if args.smoke else (128, 28, 16, 16)
  fast, slow = bench_draw(n, args.repeats)
  print(f"draw of {n} normals: fast_normal {fast:.1f} ms, jax.random.normal {slow:.1f} ms "
        f"({slow / fast:.1f}x)")
  lf, ls, l0 = bench_layer(*layer, args.repeats)
  print(f"ou layer fwd {layer}, 0.5 LSB read noise: fast_normal {lf:.1f} ms, jax.random.normal "
        f"{ls:.1f} ms ({ls / lf:.1f}x); no read noise {l0:.1f} ms")
  command = "python scripts/bench_read_noise.py"
  rows = [
      f"| {date} | read noise: one jitted draw of 2^23 float32 normals, jax {jax.__version__} | {device} | "
      f"fast_normal {fast:.1f} ms; jax.random.normal (threefry) {slow:.1f} ms ({slow / fast:.1f}x) | "
      f"`{command}` |\n",
      f"| {date} | read noise: one 'ou' conv layer fwd, batch {layer[0]}, {layer[1]}x{layer[1]}, "
      f"{layer[2]}->{layer[3]} channels, 0.5 LSB, jax {jax.__version__} | {device} | "
      f"fast_normal {lf:.1f} ms; jax.random.normal {ls:.1f} ms ({ls / lf:.1f}x); no read noise "
      f"{l0:.1f} ms | `{command}` |\n"]
  if not (args.smoke or args.no_append):
    append_rows(args.out, rows)


if __name__ == "__main__":
  main()
