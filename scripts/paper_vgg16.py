"""Maps paper-shaped pattern-pruned VGG16 masks and compares the ratios with the paper's.

Usage:
  .venv/bin/python scripts/paper_vgg16.py [--seed 0] [--out-dir DIR] [--no-docs] [--append-results]

The paper's trained masks are not public, so this generates masks with the paper's per-layer
pattern counts and overall conv sparsity (DESIGN.md section 1) [choice, the generator]:
  * every pattern has 4 entries and contains the centre (PatDNN's 4-entry patterns); each layer's
    library is that layer's pattern count drawn without replacement from the 56 such patterns;
  * a layer keeps a fraction `r_l = min(1, t * (N_max / N_l)^a)` of its kernels (`N_l` = the layer's
    weights, `a = 0.5` unless --profile-exponent), so small early layers stay denser, as pruned VGGs
    show; `t` is solved by bisection so that the kept weights (`4 * kept kernels`) hit the overall
    sparsity;
  * kept kernels are a uniform random subset, each taking a library pattern uniformly at random;
    everything is drawn from `numpy.random.default_rng(seed)`.
It prints our area efficiency, energy efficiency and speedups beside the paper's and a sensitivity
sweep over the density profile exponent `a`, rewrites the results block of docs/MAPPER.md (between
its `<!-- paper_vgg16:begin -->` / `end` markers) unless --no-docs, and with --append-results
appends the tables to docs/RESULTS.md.

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (the table reproduced in DESIGN.md section 1).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import format_table, map_network, pooled_out_hw, save_masks

CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
POOL_AFTER = [1, 3, 6, 9, 12]
PATTERN_SIZE = 4
CENTRE = 4
# dataset -> (input side, classifier (FC) layers, sparsity, patterns per layer, paper area/energy/speedup)
PAPER = {
    "cifar10": (32, [(512, 10)], 0.8603, [2, 2, 2, 6, 8, 8, 8, 6, 5, 4, 6, 6, 8], (4.67, 2.13, 1.35)),
    "cifar100": (32, [(512, 100)], 0.8523, [2, 2, 2, 2, 2, 8, 8, 8, 5, 6, 7, 6, 8], (5.20, 2.15, 1.15)),
    "imagenet": (224, [(25088, 4096), (4096, 4096), (4096, 1000)], 0.8248,
                 [2, 2, 2, 2, 2, 9, 12, 12, 9, 10, 6, 4, 4], (4.16, 1.98, 1.17)),
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def layer_shapes() -> list[tuple[int, int]]:
  """`(Cin, Cout)` of VGG16's 13 conv layers on RGB input."""
  return list(zip([3] + CHANNELS[:-1], CHANNELS))


def keep_ratios(shapes, sparsity: float, exponent: float = 0.5) -> np.ndarray:
  """Per-layer kernel keep ratios `min(1, t * (N_max / N_l)^exponent)` hitting the overall sparsity."""
  weights = np.array([9 * cin * cout for cin, cout in shapes], float)
  profile = (weights.max() / weights)**exponent
  target = (1 - sparsity) * weights.sum()

  def kept(t):
    return np.sum(np.minimum(1.0, t * profile) * weights * PATTERN_SIZE / 9)

  low, high = 0.0, 1.0
  for _ in range(60):
    low, high = ((low + high) / 2, high) if kept((low + high) / 2) < target else (low, (low + high) / 2)
  return np.minimum(1.0, high * profile)


def pattern_library(count: int, rng) -> np.ndarray:
  """`count` distinct 4-entry patterns (9-bit codes) that contain the centre."""
  others = [p for p in range(9) if p != CENTRE]
  candidates = [sum(1 << p for p in (CENTRE,) + combo) for combo in itertools.combinations(others, 3)]
  return rng.choice(candidates, size=count, replace=False)


def layer_mask(cin: int, cout: int, patterns: int, keep: float, rng) -> np.ndarray:
  """A `(3, 3, Cin, Cout)` mask: a random `keep` share of kernels, each a random library pattern."""
  library = pattern_library(patterns, rng)
  codes = np.zeros(cin * cout, np.int64)
  kept = rng.choice(cin * cout, size=int(round(keep * cin * cout)), replace=False)
  codes[kept] = rng.choice(library, size=len(kept))
  bits = (codes.reshape(1, cin, cout) >> np.arange(9).reshape(9, 1, 1)) & 1
  return bits.reshape(3, 3, cin, cout).astype(bool)


def paper_masks(dataset: str, seed: int = 0, exponent: float = 0.5) -> list[np.ndarray]:
  """The generated conv masks of one of the paper's VGG16 runs ('cifar10', 'cifar100', 'imagenet')."""
  _, _, sparsity, patterns, _ = PAPER[dataset]
  rng = np.random.default_rng(seed)
  shapes = layer_shapes()
  return [layer_mask(cin, cout, count, keep, rng)
          for (cin, cout), count, keep in zip(shapes, patterns, keep_ratios(shapes, sparsity, exponent))]


def map_dataset(dataset: str, seed: int, hw: HardwareConfig, exponent: float = 0.5):
  """Generates and maps one data set's VGG16 (FC classifier as extra layers); returns (report, masks)."""
  side, classifier, *_ = PAPER[dataset]
  masks = paper_masks(dataset, seed, exponent)
  extra = {f"fc_{i}": (np.ones(shape, bool), 1) for i, shape in enumerate(classifier)}
  report = map_network(masks, pooled_out_hw(len(masks), side, POOL_AFTER), hw, extra_layers=extra)
  return report, masks


def comparison_table(reports: dict) -> str:
  """Markdown table: our conv-layer ratios beside the paper's."""
  lines = ["| dataset | sparsity (ours) | arrays base -> pattern (lower bound) | area eff. ours / paper "
           "| energy eff. ours / paper | speedup ours / equal-area / paper |",
           "|---|---|---|---|---|---|"]
  for dataset, report in reports.items():
    totals, ratio = report["totals"], report["totals"]["ratios"]
    paper = PAPER[dataset][4]
    kept = sum(layer["kept_weights"] for layer in report["layers"])
    weights = sum(layer["weights"] for layer in report["layers"])
    lines.append(
        f"| {dataset} | {100 * (1 - kept / weights):.2f}% | {totals['baseline']['arrays']} -> "
        f"{totals['pattern']['arrays']} ({totals['pattern']['arrays_lower_bound']}) | "
        f"{ratio['area_efficiency']:.2f}x / {paper[0]:.2f}x | {ratio['energy_efficiency']:.2f}x / "
        f"{paper[1]:.2f}x | {ratio['speedup']:.2f}x / {ratio['speedup_equal_area']:.2f}x / {paper[2]:.2f}x |")
  return "\n".join(lines)


def energy_table(reports: dict) -> str:
  """Markdown table: conv energy per image by component, baseline and pattern."""
  lines = ["| dataset | mapping | RRAM (uJ) | ADC (uJ) | DAC (uJ) | total (uJ) | OU activations (M) |",
           "|---|---|---|---|---|---|---|"]
  for dataset, report in reports.items():
    for part in ("baseline", "pattern"):
      t = report["totals"][part]
      lines.append(f"| {dataset} | {part} | {t['energy_rram_pj'] / 1e6:.1f} | {t['energy_adc_pj'] / 1e6:.1f} | "
                   f"{t['energy_dac_pj'] / 1e6:.2f} | {t['energy_pj'] / 1e6:.1f} | {t['ou_activations'] / 1e6:.1f} |")
  return "\n".join(lines)


def sensitivity_table(seed: int, hw: HardwareConfig, exponents=(0.0, 0.25, 0.5, 1.0)) -> str:
  """Markdown table: CIFAR-10 conv ratios as the density profile exponent `a` varies."""
  lines = ["| profile exponent a | first-layer / last-layer kernel keep | area eff. | energy eff. | speedup "
           "| equal-area speedup |", "|---|---|---|---|---|---|"]
  for exponent in exponents:
    report, _ = map_dataset("cifar10", seed, hw, exponent)
    first, last = report["layers"][0], report["layers"][-1]
    ratio = report["totals"]["ratios"]
    lines.append(f"| {exponent} | {first['kept_kernels'] / first['kernels']:.2f} / "
                 f"{last['kept_kernels'] / last['kernels']:.3f} | {ratio['area_efficiency']:.2f}x | "
                 f"{ratio['energy_efficiency']:.2f}x | {ratio['speedup']:.2f}x | {ratio['speedup_equal_area']:.2f}x |")
  return "\n".join(lines)


BEGIN, END = "<!-- paper_vgg16:begin -->", "<!-- paper_vgg16:end -->"


def write_mapper_doc(results: str) -> str:
  """Replaces the block between the markers of docs/MAPPER.md (creates a stub if it is missing)."""
  path = os.path.join(REPO, "docs", "MAPPER.md")
  text = open(path).read() if os.path.exists(path) else f"# The mapper\n\n{BEGIN}\n{END}\n"
  if BEGIN not in text or END not in text:
    text += f"\n{BEGIN}\n{END}\n"
  head, rest = text.split(BEGIN, 1)
  tail = rest.split(END, 1)[1]
  with open(path, "w") as handle:
    handle.write(f"{head}{BEGIN}\n{results}\n{END}{tail}")
  return path


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--profile-exponent", type=float, default=0.5, help="density profile exponent a")
  parser.add_argument("--out-dir", default=None, help="also save each data set's masks here as .npz")
  parser.add_argument("--quiet", action="store_true", help="skip the per-layer tables")
  parser.add_argument("--no-docs", action="store_true", help="do not touch docs/MAPPER.md")
  parser.add_argument("--append-results", action="store_true", help="append the tables to docs/RESULTS.md")
  args = parser.parse_args(argv)
  hw = HardwareConfig()
  reports = {}
  for dataset in PAPER:
    reports[dataset], masks = map_dataset(dataset, args.seed, hw, args.profile_exponent)
    if not args.quiet:
      print(f"== {dataset} (seed {args.seed})\n{format_table(reports[dataset])}\n")
    if args.out_dir:
      os.makedirs(args.out_dir, exist_ok=True)
      side = PAPER[dataset][0]
      save_masks(os.path.join(args.out_dir, f"vgg16_{dataset}.npz"), masks,
                 pooled_out_hw(len(masks), side, POOL_AFTER)[:, 0])
  summary = comparison_table(reports) + "\n\n" + energy_table(reports)
  sweep = sensitivity_table(args.seed, hw)
  print(f"{summary}\n\nCIFAR-10, sensitivity to the density profile exponent a:\n{sweep}")
  command = f".venv/bin/python scripts/paper_vgg16.py --seed {args.seed} --profile-exponent {args.profile_exponent}"
  results = (f"Command: `{command}` (CPU, this dev machine; 2026-11-28). Conv layers only (the FC "
             f"classifier is reported apart by the script).\n\n{summary}\n\nCIFAR-10, sensitivity to the "
             f"density profile exponent `a` (same seed):\n\n{sweep}")
  if not args.no_docs:
    write_mapper_doc(results)
  if args.append_results:
    append_results(results)
  return 0


def append_results(results: str) -> None:
  """Appends the "Mapper: paper-shaped VGG16" section to docs/RESULTS.md (append only)."""
  path = os.path.join(REPO, "docs", "RESULTS.md")
  section = (f"\n## Mapper: paper-shaped VGG16\n\nDevice: CPU (this dev machine). Date: 2026-11-28. "
             f"Generated masks with the paper's per-layer pattern counts and sparsity (generator: "
             f"scripts/paper_vgg16.py; model: docs/MAPPER.md); paper defaults (512x512 arrays, 9x8 OU, "
             f"8-bit weights in two 4-bit cells, 4-bit DAC slices).\n\n{results}\n")
  new = not os.path.exists(path)
  with open(path, "a") as handle:
    handle.write("# Results\n" if new else "")
    handle.write(section)


if __name__ == "__main__":
  sys.exit(main())
