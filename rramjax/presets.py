"""The VGG shapes and the paper's VGG16 table: one home, plain Python (no numpy, jax or flax).

The models (`rramjax.models`), the mapper (`rramjax.mapper`), the configs (`configs/vgg16_*.py`)
and the scripts read these; the mapper may import this module because it imports nothing heavy.

References:
  Simonyan and Zisserman, arXiv:1409.1556 (configuration D = VGG16).
  Yu et al., NVMSA 2021, arXiv:2010.06156 (the table: pattern counts, sparsity, efficiencies;
  docs/MODEL.md section 1).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from rramjax.errors import ConfigError

# 3x3 conv channel counts with 'M' for a 2x2 max pool.
VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
SMALL_PLAN = (32, 32, "M", 64, 64, "M", 128, 128, "M")
PLANS = {"vgg16": VGG16_PLAN, "vgg_small": SMALL_PLAN}


def conv_output_sizes(plan: Sequence[int | str], input_size: int) -> list[tuple[int, int]]:
  """`(H_out, W_out)` of each 3x3 conv layer of a plan (SAME padding: the side at that stage).

  Raises:
    ConfigError: the pools shrink the input below one pixel before a conv layer.
  """
  sizes, side = [], int(input_size)
  for c in plan:
    if c == "M":
      side //= 2
      continue
    if side < 1:
      raise ConfigError(f"A {input_size}-pixel input is pooled below one pixel before conv layer "
                        f"{len(sizes)}; use a larger input or fewer pools.")
    sizes.append((side, side))
  return sizes


def pool_after(plan: Sequence[int | str]) -> list[int]:
  """Zero-based indices of the conv layers that a 2x2 max pool follows (VGG16: 1, 3, 6, 9, 12)."""
  out, layer = [], -1
  for c in plan:
    if c == "M":
      out.append(layer)
    else:
      layer += 1
  return out


def conv_channels(plan: Sequence[int | str], in_channels: int = 3) -> list[tuple[int, int]]:
  """`(Cin, Cout)` of each 3x3 conv layer of a plan."""
  widths = [c for c in plan if c != "M"]
  return list(zip([in_channels] + widths[:-1], widths))


@dataclasses.dataclass(frozen=True)
class PaperRun:
  """One row of the paper's VGG16 table and the network it was measured on.

  Attributes:
    input_size: image side (32 for CIFAR, 224 for ImageNet).
    classifier: the FC layers `(in, out)` after the conv stack.
    sparsity: overall 3x3-conv weight sparsity.
    patterns: patterns per conv layer (13).
    top1: top-1 accuracy of the pruned network.
    area, energy, speedup: the paper's area efficiency, energy efficiency and speedup.
  """
  input_size: int
  classifier: tuple
  sparsity: float
  patterns: tuple
  top1: float
  area: float
  energy: float
  speedup: float


PAPER_VGG16 = {
    "cifar10": PaperRun(32, ((512, 10),), 0.8603, (2, 2, 2, 6, 8, 8, 8, 6, 5, 4, 6, 6, 8), 0.9263,
                        4.67, 2.13, 1.35),
    "cifar100": PaperRun(32, ((512, 100),), 0.8523, (2, 2, 2, 2, 2, 8, 8, 8, 5, 6, 7, 6, 8), 0.7273,
                         5.20, 2.15, 1.15),
    "imagenet": PaperRun(224, ((25088, 4096), (4096, 4096), (4096, 1000)), 0.8248,
                         (2, 2, 2, 2, 2, 9, 12, 12, 9, 10, 6, 4, 4), 0.7115, 4.16, 1.98, 1.17),
}
# The pruning targets the configs read: per-layer pattern counts and overall sparsity.
PAPER = {name: (list(run.patterns), run.sparsity) for name, run in PAPER_VGG16.items()}


def vgg16_config(name, dataset, arg, *, patterns, sparsity, pad_to=None, hidden=(), epochs=(160, 30, 40),
                 batch_size=256, lr=(0.05, 0.01, 0.005), augment="crop_flip", on_device=True):
  pre, admm, fine = epochs
  config = {
      "name": name,
      "seed": 0,
      "data": {"name": dataset, "pad_to": pad_to, "augment": augment, "on_device": on_device},
      "model": {"name": "vgg16", "width": 1.0, "hidden": list(hidden)},
      "train": {"batch_size": batch_size, "eval_batch_size": 1000, "optimizer": "sgd",
                "momentum": 0.9, "weight_decay": 5e-4, "pretrain_epochs": pre,
                "pretrain_lr": lr[0], "admm_epochs": admm, "admm_lr": lr[1],
                "finetune_epochs": fine, "finetune_lr": lr[2], "hwtune_epochs": 2,
                "hwtune_lr": lr[2] / 5, "log_every": 100},
      "prune": {"enabled": True, "patterns_per_layer": list(patterns), "library": "greedy",
                "sparsity": sparsity, "allocation": "uniform", "rho": 1e-3, "rho_growth": 1.3,
                "rho_max": 0.1, "admm_update_every": 500},
      "crossbar": {"train_fidelity": "ou", "eval_fidelity": "ou", "eval_seeds": 8,
                   "eval_read_noise_lsb": [0.5], "calib_examples": 512},
  }
  if arg == "smoke":
    config["data"].update(train_limit=256, test_limit=128, on_device=False)
    config["model"]["width"] = 0.125
    config["train"].update(batch_size=32, eval_batch_size=64, pretrain_epochs=1, admm_epochs=1,
                           finetune_epochs=1, hwtune_epochs=1, hwtune_steps=1, log_every=2)
    config["prune"]["admm_update_every"] = 4
    config["crossbar"].update(eval_seeds=2, calib_examples=32, eval_limit=64)
  elif arg is not None:
    raise ValueError(f"Unknown variant {arg!r}; use ':smoke' or nothing.")
  return config
