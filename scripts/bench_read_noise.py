"""Read noise: `faults.fast_normal` against `jax.random.normal` (threefry), in the same run.

Usage:
  python scripts/bench_read_noise.py            # appends to docs/BENCHMARKS.md
  python scripts/bench_read_noise.py --smoke    # tiny sizes, prints only

Rows: (1) one draw of 2^23 standard-normal float32 values, jitted; (2) one 'ou' conv layer
forward with 0.5 LSB read noise (a noise draw per OU sum) with the crossbar's noise generator as
shipped (fast_normal) and with it replaced by `jax.random.normal` for this measurement, and the
same layer without read noise; (3) the planned CPU kernels' draw (`numba_cpu._add_noise`, 32-bit
lanes) against the same hash written in numba's widened 64-bit arithmetic (`_add_noise_wide`,
below: the form it replaced), bit-equal draws checked. Median wall time over repeats, after one
compile run.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numba
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_crossbar import _inputs, _median_ms, append_rows  # pylint: disable=g-import-not-at-top
from benchmark import device_name  # pylint: disable=g-import-not-at-top

from rramjax.hardware import HardwareConfig, crossbar, fast_normal, init_hw_state, make_conv_fn
from rramjax.hardware.kernels import numba_cpu


def _threefry_normal(key, shape):
  return jax.random.normal(key, shape, jnp.float32)


def bench_draw(n, repeats):
  key = jax.random.key(0)
  fast = _median_ms(jax.jit(lambda k: fast_normal(k, (n,))), (key,), repeats)
  slow = _median_ms(jax.jit(lambda k: _threefry_normal(k, (n,))), (key,), repeats)
  return fast, slow


@numba.njit(cache=False)
def _add_noise_wide(acc, first, seed0, seed1, noise, length):
  """`numba_cpu._add_noise` with the hash in numba's default (64-bit widened) integer arithmetic."""
  mask = np.uint64(0xFFFFFFFF)
  for p in range(length):
    h = np.uint32(((first + np.uint64(p)) * np.uint64(0x9E3779B9)) & mask) ^ seed0
    for seed in (np.uint32(0), seed1):
      h ^= seed
      h ^= h >> np.uint32(16)
      h = np.uint32((np.uint64(h) * np.uint64(0x85EBCA6B)) & mask)
      h ^= h >> np.uint32(13)
      h = np.uint32((np.uint64(h) * np.uint64(0xC2B2AE35)) & mask)
      h ^= h >> np.uint32(16)
    total = (h & np.uint32(255)) + ((h >> np.uint32(8)) & np.uint32(255)) + \
        ((h >> np.uint32(16)) & np.uint32(255)) + (h >> np.uint32(24))
    acc[p] += noise * ((np.float32(total) - np.float32(510.0)) * numba_cpu._INV_STD)  # pylint: disable=protected-access


def bench_numba_draw(length, calls, repeats):
  """ns per draw of the shipped kernel and of the widened form, on one `length` row, `calls` times."""
  import time  # pylint: disable=g-import-not-at-top
  # The counters wrap past 2^32 inside the row: the shipped kernel counts in uint32, the wide form
  # in uint64 (wrapped to 32 bits in its hash).
  rest = (np.uint32(11), np.uint32(22), np.float32(0.5), length)
  forms = ((numba_cpu._add_noise, (np.uint32(2**32 - 7), *rest)),  # pylint: disable=protected-access
           (_add_noise_wide, (np.uint64(2**32 - 7), *rest)))
  a, b = np.zeros(length, np.float32), np.zeros(length, np.float32)
  for out, (fn, args) in zip((a, b), forms):
    fn(out, *args)
  if not np.array_equal(a, b):
    raise SystemExit("the two forms draw different noise")
  out = []
  for fn, args in forms:
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      for _ in range(calls):
        fn(a, *args)
      times.append((time.perf_counter() - start) / (calls * length) * 1e9)
    out.append(sorted(times)[len(times) // 2])
  return out


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
  lanes32, wide = bench_numba_draw(4096, 50 if args.smoke else 2000, args.repeats)
  print(f"planned CPU kernel noise draw: {lanes32:.2f} ns (32-bit lanes), {wide:.2f} ns (widened "
        f"64-bit form): {wide / lanes32:.2f}x, bit-equal")
  command = "python scripts/bench_read_noise.py"
  rows = [
      f"| {date} | read noise: one jitted draw of 2^23 float32 normals, jax {jax.__version__} | {device} | "
      f"fast_normal {fast:.1f} ms; jax.random.normal (threefry) {slow:.1f} ms ({slow / fast:.1f}x) | "
      f"`{command}` |\n",
      f"| {date} | read noise: one 'ou' conv layer fwd, batch {layer[0]}, {layer[1]}x{layer[1]}, "
      f"{layer[2]}->{layer[3]} channels, 0.5 LSB, jax {jax.__version__} | {device} | "
      f"fast_normal {lf:.1f} ms; jax.random.normal {ls:.1f} ms ({ls / lf:.1f}x); no read noise "
      f"{l0:.1f} ms | `{command}` |\n",
      f"| {date} | read noise: the planned CPU kernels' draw (numba, one row of 4096 positions), "
      f"32-bit lanes vs the hash in numba's widened 64-bit integers, bit-equal | {device} | "
      f"{lanes32:.2f} ns vs {wide:.2f} ns per draw ({wide / lanes32:.2f}x) | `{command}` |\n"]
  if not (args.smoke or args.no_append):
    append_rows(args.out, rows)


if __name__ == "__main__":
  main()
