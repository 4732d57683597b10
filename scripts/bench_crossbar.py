"""Times one conv layer (forward, and forward + backward) at the ideal, quant and ou fidelities.

Usage:
  python scripts/bench_crossbar.py            # small-VGG and VGG16-ish layers, appends to docs/BENCHMARKS.md
  python scripts/bench_crossbar.py --smoke    # tiny shapes, prints only
  python scripts/bench_crossbar.py --no-append --repeats 5

Each row: median wall time over repeats, after one compile run, of the jitted forward
`conv_fn(x, kernel, mask, 0)` ('fwd') or of `grad(sum(conv_fn(...) * r))` w.r.t. x and kernel
('fwd+bwd'), and its ratio to the dense ('ideal') layer in the same mode, measured in the same
run on the same device (ratio = dense time / this time; 1 = as fast). On XLA:CPU the dense conv's
backward pass is far slower than its forward, so the two modes give very different ratios.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.hardware import HardwareConfig, init_hw_state, make_conv_fn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchmark  # noqa: E402  (sibling script: device_name, the one description of the device)

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

One row per measurement; append only.

| date | what | device | result | command |
|---|---|---|---|---|
"""


def _inputs(batch, size, cin, cout, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(np.maximum(rng.normal(size=(batch, size, size, cin)), 0), jnp.float32)
  mask = jnp.asarray(rng.random((3, 3, cin, cout)) < 0.5, jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32) * mask
  return x, kernel, mask


def _median_ms(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def _time_layer(conv_fn, x, kernel, mask, mode, repeats):
  r = jnp.linspace(-1.0, 1.0, kernel.shape[-1])
  if mode == "fwd":
    fn = jax.jit(lambda x, k, m: conv_fn(x, k, m, 0))
  else:
    fn = jax.jit(jax.grad(lambda x, k, m: jnp.sum(conv_fn(x, k, m, 0) * r), argnums=(0, 1)))
  return _median_ms(fn, (x, kernel, mask), repeats)  # mask as an argument: no constant folding


def bench_layer(layer, hw, repeats, fidelities, mode):
  """{fidelity: median ms} for one layer (name, batch, size, cin, cout) in mode 'fwd' or 'fwd+bwd'."""
  _, batch, size, cin, cout = layer
  x, kernel, mask = _inputs(batch, size, cin, cout)
  hw_state = init_hw_state(1, hw)
  hw_state["act_scale"] = jnp.full((1,), float(jnp.max(x)))
  return {f: _time_layer(make_conv_fn(f, hw, hw_state), x, kernel, mask, mode, repeats)
          for f in fidelities}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--no-append", action="store_true")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs/BENCHMARKS.md"))
  args = parser.parse_args()
  device_name = benchmark.device_name()
  command = "python scripts/bench_crossbar.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
  date = datetime.date.today().isoformat()
  print(f"date {date}, device {device_name}, jax {jax.__version__}")
  rows = []
  for layer in SMOKE_LAYERS if args.smoke else LAYERS:
    for mode in ("fwd", "fwd+bwd"):
      times = bench_layer(layer, HardwareConfig(), args.repeats, ("ideal", "quant", "ou"), mode)
      for fidelity, ms in times.items():
        print(f"{layer[0]:30s} batch {layer[1]:4d} {fidelity:6s} {mode:8s} {ms:10.2f} ms "
              f"{times['ideal'] / ms:8.4f}x dense", flush=True)
      result = "; ".join(f"{f} {ms:.1f} ms ({times['ideal'] / ms:.3f}x dense)" for f, ms in times.items())
      rows.append(f"| {date} | crossbar: one conv layer {mode}, {layer[0]}, batch {layer[1]}, default "
                  f"HardwareConfig (8-bit ADC), jax {jax.__version__} | {device_name} | {result} | "
                  f"`{command}` |\n")
  if not (args.smoke or args.no_append):
    append_rows(args.out, rows)


def append_rows(path, rows):
  """Appends table rows to docs/BENCHMARKS.md (created with its header when missing)."""
  out = pathlib.Path(path)
  out.parent.mkdir(parents=True, exist_ok=True)
  if not out.exists():
    out.write_text(HEADER)
  with out.open("a") as f:
    f.writelines(rows)
  print(f"appended {len(rows)} rows to {out}")


if __name__ == "__main__":
  main()
