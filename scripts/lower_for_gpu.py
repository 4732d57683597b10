"""Lowers the planned `ou` train and eval steps for CUDA on this machine: the GPU path's checks that
need no GPU.

  python scripts/lower_for_gpu.py                        # VGG16 32x32 bf16 batch 256, small VGG 128
  python scripts/lower_for_gpu.py --models vgg_small --batch 8

For each model: scripts/benchmark.py's planned `ou` row (the same masks, hardware and steps), its
jitted train and eval steps traced and lowered within `rramjax.hardware.lowering_for_gpu()` (the
`pallas` backend, compiled for an H100 instead of Pallas's interpret mode) with
`lowering_platforms=("cuda",)`. That runs Pallas's Triton
lowering of every kernel (a primitive Triton lacks fails here), and shows that no host callback is
left in the GPU program (a numba kernel there would copy every activation to the host). Prints,
per step: the lowering's seconds, the Triton kernels, the host callbacks, the StableHLO's size and
the bytes of array constants embedded in it (the plans' index arrays, which a GPU compiler builds
into the executable). Exit status 1 when a step fails to lower or holds a host callback.
Triton's compilation to PTX and a run need the GPU: scripts/device_check.sh.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import benchmark

_CONSTANT = re.compile(r"stablehlo\.constant dense<[^>]*>\s*:\s*tensor<((?:\d+x)*)([a-z]+\d*)>")
_BYTES = {"i1": 1, "i8": 1, "ui8": 1, "bf16": 2, "f16": 2, "i16": 2, "i32": 4, "ui32": 4, "f32": 4,
          "i64": 8, "ui64": 8, "f64": 8}


def constant_bytes(text: str) -> tuple[int, int]:
  """(count, bytes) of the non-scalar constants in StableHLO text."""
  count = size = 0
  for dims, dtype in _CONSTANT.findall(text):
    if dims:
      count += 1
      numel = 1
      for d in dims.rstrip("x").split("x"):
        numel *= int(d)
      size += numel * _BYTES.get(dtype, 4)
  return count, size


def lower_row(model: str, batch: int, width: float, sparsity: float, dtype: str) -> list[dict]:
  """The row's train and eval steps lowered for CUDA with the compiled Pallas kernels."""
  import jax  # pylint: disable=g-import-not-at-top
  from rramjax.hardware import lowering_for_gpu  # pylint: disable=g-import-not-at-top

  # One device: no data mesh (the steps are traced under lowering_for_gpu's abstract one).
  _, train_step, eval_step, state, images, labels, valid = benchmark.setup_row(
      model, "ou-planned", batch, width, sparsity, dtype, smoke=True)
  calls = {"train": (train_step, (state, images, labels)),
           "eval": (eval_step, (state, images, labels, valid, jax.random.key(1)))}
  out = []
  for name, (step, args) in calls.items():
    start = time.perf_counter()
    try:
      with lowering_for_gpu():  # what a GPU process picks: 'pallas', compiled by Triton
        text = step.trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    except Exception as e:  # pylint: disable=broad-except
      out.append({"model": model, "step": name, "error": f"{type(e).__name__}: {str(e)[:500]}"})
      continue
    count, size = constant_bytes(text)
    out.append({"model": model, "step": name, "seconds": time.perf_counter() - start,
                "triton": text.count("__gpu$xla.gpu.triton"),
                "callbacks": len(re.findall(r"custom_call @\w*callback", text)),
                "hlo_mb": len(text) / 1e6, "constants": count, "constant_mb": size / 1e6})
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="vgg16,vgg_small")
  parser.add_argument("--batch", type=int, default=None, help="default: VGG16 256, small VGG 128")
  parser.add_argument("--dtype", default=None, help="default: VGG16 bfloat16, small VGG float32")
  args = parser.parse_args(argv)
  print(f"lowered on: {benchmark.device_name()}; "
        + ", ".join(f"{k} {v}" for k, v in benchmark.versions().items()), flush=True)
  bad = 0
  for model in args.models.split(","):
    vgg16 = model == "vgg16"
    batch = args.batch or (256 if vgg16 else 128)
    dtype = args.dtype or ("bfloat16" if vgg16 else "float32")
    sparsity = benchmark.PAPER_CIFAR10_SPARSITY if vgg16 else 0.86
    for r in lower_row(model, batch, 1.0 if vgg16 else 0.5, sparsity, dtype):
      head = f"{model} batch {batch} {dtype} {r['step']}:"
      if "error" in r:
        bad += 1
        print(f"{head} FAILED to lower for CUDA: {r['error']}", flush=True)
        continue
      bad += r["callbacks"] > 0
      print(f"{head} lowered for CUDA in {r['seconds']:.1f} s; {r['triton']} Triton kernels, "
            f"{r['callbacks']} host callbacks; StableHLO {r['hlo_mb']:.1f} MB, of which "
            f"{r['constants']} array constants of {r['constant_mb']:.1f} MB", flush=True)
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
