"""Train-step and eval throughput of every fidelity, on one device or several, in one run.

  python scripts/benchmark.py                       # small VGG (width 0.5), batch 128; + VGG16 on a GPU
  python scripts/benchmark.py --json out.json       # also write the rows as JSON
  python scripts/benchmark.py --models vgg16 --batch 256 --dtype bfloat16   # the GPU figures
  python scripts/benchmark.py --smoke --no-append   # seconds: tiny sizes, prints only
  python scripts/benchmark.py --fidelities ideal,ou-planned --devices 1,2   # a CPU split in two

Rows: `ideal`, `quant`, `ou` (reference: every kernel, every tap) and `ou-planned` (only the OUs of
the layer's plan, `crossbar_conv(..., plan=make_ou_plan(mask, hw))`, on the platform's backend:
numba kernels on a CPU, Pallas on a GPU). Each row runs in its own process (so that its peak memory
is its own: the device's peak bytes in use on a GPU, the process's peak resident set on a CPU),
times `--steps` jitted train steps (the pipeline's masked step, Adam) and eval steps after one
compile step, and reports images/s and the ratio to `ideal` measured in the same run on as many
devices (`--devices`: the batch split over a data mesh, as `train.devices` does). The masks are
the pipeline's pattern pruning of the freshly initialised weights (PatDNN's 8 four-entry patterns,
ERK keep ratios for `--sparsity`, default 0.86; VGG16 takes the paper's 86.03%). The small VGG sees
Fashion-MNIST batches when the data set is installed, VGG16 synthetic 32x32x3 images. The script
also times `map_network` on paper-shaped VGG16 masks (numpy, host). It prints the table with the
device and versions, appends the rows to docs/BENCHMARKS.md, and with `--json PATH` writes
`{"device", "versions", "rows": [{model, fidelity, devices, train_img_s, eval_img_s, train_ratio,
eval_ratio, peak_bytes, train_first_s, eval_first_s}], "map_vgg16_s"}` (`*_first_s`: the first
call's seconds, compilation included).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIDELITIES = ("ideal", "quant", "ou", "ou-planned")
PAPER_CIFAR10_SPARSITY = 0.8603


def device_name() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  if device.platform != "cpu":
    return f"{device.device_kind} ({device.platform})"
  model = platform.processor() or platform.machine()
  cpuinfo = pathlib.Path("/proc/cpuinfo")
  if cpuinfo.exists():
    names = [l.split(":", 1)[1].strip() for l in cpuinfo.read_text().splitlines()
             if l.startswith("model name")]
    model = names[0] if names else model
  return f"{model}, {os.cpu_count()} cores (CPU)"


def versions() -> dict:
  import jax, flax, numpy  # pylint: disable=g-import-not-at-top,multiple-imports
  out = {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
         "numpy": numpy.__version__}
  try:
    import numba  # pylint: disable=g-import-not-at-top
    out["numba"] = numba.__version__
  except ImportError:
    pass
  return out


# One row, in a child process ------------------------------------------------------------------
def _images(model: str, batch: int, smoke: bool):
  import numpy as np  # pylint: disable=g-import-not-at-top
  if model == "vgg_small" and not smoke:
    try:
      from rramjax import data  # pylint: disable=g-import-not-at-top
      ds = data.load_dataset("fashion_mnist", "train").take(batch)
      images, labels = next(data.batches(ds, batch, seed=0, epoch=0, shuffle=False))
      return images, labels, 10
    except Exception:  # pylint: disable=broad-except
      pass  # no data set: synthetic images time the same
  rng = np.random.default_rng(0)
  side, channels = (28, 1) if model == "vgg_small" else (32, 3)
  images = rng.random((batch, side, side, channels)).astype(np.float32)
  return images, rng.integers(0, 10, batch).astype(np.int32), 10


def _masks(kernels, sparsity: float):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from rramjax import patterns  # pylint: disable=g-import-not-at-top
  library = patterns.default_patdnn_library()
  ratios = patterns.keep_ratios_for_sparsity([k.shape for k in kernels], [4.0] * len(kernels),
                                             sparsity, rule="erk")
  return [np.asarray(patterns.prune_layer(k, library, r)) for k, r in zip(kernels, ratios)]


def _layer_inputs(graphdef, params, batch_stats, images):
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from rramjax.models import ideal_conv  # pylint: disable=g-import-not-at-top
  inputs = []

  def record(x, kernel, layer):
    inputs.append(x)
    return ideal_conv(x, kernel, layer)

  nnx.merge(graphdef, params, batch_stats)(images, record)
  return [jax.device_get(x) for x in inputs]


def run_row(model: str, fidelity: str, batch: int, steps: int, width: float, sparsity: float,
            dtype: str, smoke: bool, devices: int = 1) -> dict:
  """Times one (model, fidelity) on `devices` devices: train and eval images/s and peak memory."""
  import jax  # pylint: disable=g-import-not-at-top
  from rramjax.train import parallel  # pylint: disable=g-import-not-at-top

  mesh, train_step, eval_step, state, images, labels, valid = setup_row(
      model, fidelity, batch, width, sparsity, dtype, smoke, devices)
  first = {}

  def timed(fn, count, name):
    start = time.perf_counter()
    jax.block_until_ready(fn())  # compile + warm-up
    first[name] = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(count):
      out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / count

  box = {"state": state}

  def train():
    box["state"], metrics = train_step(box["state"], images, labels)
    return metrics

  with parallel.use_mesh(mesh):
    t_train = timed(train, steps, "train")
    t_eval = timed(lambda: eval_step(box["state"], images, labels, valid, jax.random.key(1)), steps,
                   "eval")
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"model": model, "fidelity": fidelity, "devices": devices, "train_img_s": batch / t_train,
          "eval_img_s": batch / t_eval, "peak_bytes": int(peak),
          "train_first_s": first["train"], "eval_first_s": first["eval"]}


def setup_row(model: str, fidelity: str, batch: int, width: float, sparsity: float, dtype: str,
              smoke: bool, devices: int = 1):
  """One row's jitted steps and inputs: `(mesh, train_step, eval_step, state, images, labels,
  valid)`, called as `train_step(state, images, labels)` and
  `eval_step(state, images, labels, valid, key)` under `parallel.use_mesh(mesh)`."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from rramjax import hardware, models  # pylint: disable=g-import-not-at-top
  from rramjax.train import parallel  # pylint: disable=g-import-not-at-top
  from rramjax.train.step import make_eval_step, make_train_step  # pylint: disable=g-import-not-at-top

  if devices > 1:  # before any jax operation; only the CPU platform's device count changes
    parallel.split_cpu(devices)
  mesh = parallel.make_mesh(devices, batch)

  images, labels, classes = _images(model, batch, smoke)
  net = models.create_model(model, num_classes=classes, in_channels=images.shape[-1],
                            input_size=images.shape[1], width=width, seed=0)
  _, params, batch_stats = nnx.split(net, nnx.Param, nnx.BatchStat)
  params, batch_stats = nnx.to_pure_dict(params), nnx.to_pure_dict(batch_stats)
  kernels = [np.asarray(params["convs"][i]["kernel"]) for i in sorted(params["convs"])]
  masks = _masks(kernels, sparsity)
  hw = hardware.HardwareConfig()
  hw_state = hardware.init_hw_state(len(masks), hw)
  net.eval()
  hw_state = hardware.calibrate_act_scales(
      hw_state, _layer_inputs(nnx.graphdef(net), params, batch_stats, jnp.asarray(images)))
  name = "ou" if fidelity.startswith("ou") else fidelity
  plans = [hardware.make_ou_plan(m, hw) for m in masks] if fidelity == "ou-planned" else None
  compute = jnp.dtype(dtype)

  def builder(masks_, hw_state_, key):
    conv = hardware.make_conv_fn(name, hw, hw_state_, key, plans=plans, compute_dtype=compute)
    return lambda x, kernel, layer: conv(x, kernel, masks_[layer], layer)

  net.train()
  tx = optax.adam(1e-4)
  state = {"params": params, "batch_stats": batch_stats, "masks": [jnp.asarray(m, jnp.float32) for m in masks],
           "hw_state": hw_state, "step": jnp.zeros((), jnp.int32),
           "key": jax.random.key_data(jax.random.key(0))}
  state["opt_state"] = tx.init({"params": params})
  train_step = make_train_step(nnx.graphdef(net), tx, builder)
  net.eval()
  eval_step = make_eval_step(nnx.graphdef(net), builder)
  state = parallel.replicate(mesh, state)
  images, labels = parallel.shard_batch(mesh, jnp.asarray(images), jnp.asarray(labels))
  (valid,) = parallel.shard_batch(mesh, jnp.ones(len(labels), bool))
  return mesh, train_step, eval_step, state, images, labels, valid


# The parent -----------------------------------------------------------------------------------
def map_vgg16_seconds(repeats: int = 3) -> float:
  """Best wall time of `map_network` on paper-shaped VGG16 masks (CIFAR-10 targets)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(ROOT / "scripts"))
  import paper_vgg16  # pylint: disable=g-import-not-at-top
  from rramjax import mapper  # pylint: disable=g-import-not-at-top
  masks = paper_vgg16.paper_masks("cifar10", seed=0)
  out_hw = mapper.pooled_out_hw(len(masks), 32, paper_vgg16.POOL_AFTER)
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    mapper.map_network(masks, out_hw)
    best = min(best, time.perf_counter() - start)
  return float(best)


def _child(args, model, fidelity, devices) -> dict:
  cmd = [sys.executable, __file__, "--child", model, fidelity, "--devices", str(devices),
         "--batch", str(args.batch),
         "--steps", str(args.steps), "--width", str(args.width), "--dtype", args.dtype]
  cmd += (["--sparsity", str(args.sparsity)] if args.sparsity is not None else [])
  cmd += ["--smoke"] if args.smoke else []
  out = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if out.returncode != 0:
    raise SystemExit(f"benchmark row {model}/{fidelity} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def _format(rows, device, vers) -> str:
  lines = [f"device: {device}; " + ", ".join(f"{k} {v}" for k, v in vers.items()),
           f"{'model':<10} {'fidelity':<11} {'devices':>7} {'train img/s':>12} {'x ideal':>8} {'eval img/s':>11} "
           f"{'x ideal':>8} {'peak MiB':>9}"]
  for r in rows:
    lines.append(f"{r['model']:<10} {r['fidelity']:<11} {r['devices']:>7} {r['train_img_s']:>12.1f} "
                 f"{r['train_ratio']:>8.3f} {r['eval_img_s']:>11.1f} {r['eval_ratio']:>8.3f} "
                 f"{r['peak_bytes'] / 2**20:>9.0f}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=None,
                      help="comma-separated: vgg_small, vgg16 (default: vgg_small, and vgg16 on a GPU)")
  parser.add_argument("--fidelities", default=",".join(FIDELITIES))
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--width", type=float, default=0.5, help="small VGG width (VGG16: 1)")
  parser.add_argument("--sparsity", type=float, default=None,
                      help="3x3-conv weight sparsity (default 0.86; VGG16 the paper's 0.8603)")
  parser.add_argument("--dtype", default="float32", help="compute dtype of the ideal/quant convs")
  parser.add_argument("--devices", default="1",
                      help="comma-separated device counts, each a set of rows (data parallel over "
                      "a mesh; on a CPU the host is split into that many devices first)")
  parser.add_argument("--json", dest="json_path", help="also write the rows to this JSON file")
  parser.add_argument("--no-append", action="store_true", help="do not append to docs/BENCHMARKS.md")
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, for testing the script")
  parser.add_argument("--child", nargs=2, metavar=("MODEL", "FIDELITY"), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    model, fidelity = args.child
    sparsity = args.sparsity or (PAPER_CIFAR10_SPARSITY if model == "vgg16" else 0.86)
    width = args.width if model == "vgg_small" else (0.125 if args.smoke else 1.0)
    print(json.dumps(run_row(model, fidelity, args.batch, args.steps, width, sparsity, args.dtype,
                             args.smoke, int(args.devices))))
    return 0
  import jax  # pylint: disable=g-import-not-at-top
  on_gpu = jax.default_backend() == "gpu"
  models = args.models.split(",") if args.models else ["vgg_small"] + (["vgg16"] if on_gpu else [])
  device, vers = device_name(), versions()
  print(f"device: {device}; " + ", ".join(f"{k} {v}" for k, v in vers.items()), flush=True)
  rows = []
  for model, devices in ((m, int(d)) for m in models for d in args.devices.split(",")):
    ideal = None
    for fidelity in args.fidelities.split(","):
      row = _child(args, model, fidelity, devices)
      ideal = ideal or (row if fidelity == "ideal" else None)
      row["train_ratio"] = row["train_img_s"] / ideal["train_img_s"] if ideal else float("nan")
      row["eval_ratio"] = row["eval_img_s"] / ideal["eval_img_s"] if ideal else float("nan")
      rows.append(row)
      print(f"  {model} {fidelity} on {devices} device(s): train {row['train_img_s']:.1f} img/s ({row['train_ratio']:.3f}x), "
            f"eval {row['eval_img_s']:.1f} img/s ({row['eval_ratio']:.3f}x); first call (compile) "
            f"train {row['train_first_s']:.1f} s, eval {row['eval_first_s']:.1f} s", flush=True)
  map_s = map_vgg16_seconds()
  print(_format(rows, device, vers))
  print(f"map_network, paper-shaped VGG16 (13 conv layers): {map_s:.3f} s")
  result = {"device": device, "versions": vers, "batch": args.batch, "dtype": args.dtype,
            "rows": rows, "map_vgg16_s": map_s}
  if args.json_path:
    pathlib.Path(args.json_path).write_text(json.dumps(result, indent=1))
  if not (args.no_append or args.smoke):
    _append(result, argv)
  return 0


def _append(result: dict, argv) -> None:
  sys.path.insert(0, str(ROOT / "scripts"))
  from bench_crossbar import append_rows  # pylint: disable=g-import-not-at-top
  date = datetime.date.today().isoformat()
  command = "`python scripts/benchmark.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])) + "`"
  vers = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
  rows = []
  for r in result["rows"]:
    rows.append(f"| {date} | train/eval step {r['fidelity']}: {r['model']}, batch {result['batch']}, "
                f"{r['devices']} device(s), "
                f"{result['dtype']}; {vers} | {result['device']} | train {r['train_img_s']:.1f} img/s "
                f"({r['train_ratio']:.3f}x ideal), eval {r['eval_img_s']:.1f} img/s "
                f"({r['eval_ratio']:.3f}x ideal), peak {r['peak_bytes'] / 2**20:.0f} MiB | {command} |\n")
  rows.append(f"| {date} | mapper: `map_network` on paper-shaped VGG16 (13 conv layers) | "
              f"{result['device']} | {result['map_vgg16_s']:.3f} s (best of 3) | {command} |\n")
  append_rows(ROOT / "docs" / "BENCHMARKS.md", rows)


if __name__ == "__main__":
  sys.exit(main())
