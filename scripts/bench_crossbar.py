"""Times one conv layer, forward + backward, at the 'ideal' and 'ou' fidelities (and 'quant').

Usage:
  python scripts/bench_crossbar.py            # small-VGG and VGG16-ish layers, appends to docs/BENCHMARKS.md
  python scripts/bench_crossbar.py --smoke    # tiny shapes, prints only
  python scripts/bench_crossbar.py --no-append --repeats 5

Each row: the jitted `grad(sum(conv_fn(x, kernel, mask, 0) * r))` w.r.t. x and kernel, median
wall time over repeats after one compile run, and its ratio to the dense ('ideal') layer
measured in the same run on the same device (ratio = dense time / this time; 1 = as fast).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.hardware import HardwareConfig, init_hw_state, make_conv_fn

# (name, batch, H=W, Cin, Cout)
LAYERS = [
    ("small-VGG conv2 16->16 @28", 128, 28, 16, 16),
    ("small-VGG conv4 32->32 @14", 128, 14, 32, 32),
    ("small-VGG conv6 64->64 @7", 128, 7, 64, 64),
    ("VGG16 conv2 64->64 @32", 8, 32, 64, 64),
    ("VGG16 conv5 256->256 @8", 8, 8, 256, 256),
]
SMOKE_LAYERS = [("smoke 8->8 @8", 4, 8, 8, 8)]
HEADER = """# Benchmarks

Rows are appended by scripts (append only). ratio = dense ('ideal') time / this time, measured in
the same run on the same device.

| date | script | device | jax | layer | batch | fidelity | fwd+bwd ms | ratio to dense |
|---|---|---|---|---|---|---|---|---|
"""


def _inputs(batch, size, cin, cout, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(np.maximum(rng.normal(size=(batch, size, size, cin)), 0), jnp.float32)
  mask = jnp.asarray(rng.random((3, 3, cin, cout)) < 0.5, jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32) * mask
  return x, kernel, mask


def _time_grad(conv_fn, x, kernel, mask, repeats):
  r = jnp.linspace(-1.0, 1.0, kernel.shape[-1])
  step = jax.jit(jax.grad(lambda x, k: jnp.sum(conv_fn(x, k, mask, 0) * r), argnums=(0, 1)))
  jax.block_until_ready(step(x, kernel))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(step(x, kernel))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def bench_layer(layer, hw, repeats, fidelities):
  name, batch, size, cin, cout = layer
  x, kernel, mask = _inputs(batch, size, cin, cout)
  hw_state = init_hw_state(1, hw)
  hw_state["act_scale"] = jnp.full((1,), float(jnp.max(x)))
  return {f: _time_grad(make_conv_fn(f, hw, hw_state), x, kernel, mask, repeats) for f in fidelities}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--no-append", action="store_true")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs/BENCHMARKS.md"))
  args = parser.parse_args()
  device = jax.devices()[0]
  device_name = f"{device.platform}:{device.device_kind}"
  date = datetime.date.today().isoformat()
  print(f"date {date}, device {device_name}, jax {jax.__version__}")
  rows = []
  for layer in SMOKE_LAYERS if args.smoke else LAYERS:
    times = bench_layer(layer, HardwareConfig(), args.repeats, ("ideal", "quant", "ou"))
    for fidelity, ms in times.items():
      ratio = times["ideal"] / ms
      print(f"{layer[0]:32s} batch {layer[1]:4d} {fidelity:6s} {ms:10.2f} ms  {ratio:8.4f}x dense")
      rows.append(f"| {date} | bench_crossbar.py | {device_name} | {jax.__version__} | {layer[0]} | "
                  f"{layer[1]} | {fidelity} | {ms:.2f} | {ratio:.4f} |\n")
  if not (args.smoke or args.no_append):
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
      out.write_text(HEADER)
    with out.open("a") as f:
      f.writelines(rows)
    print(f"appended {len(rows)} rows to {out}")


if __name__ == "__main__":
  main()
