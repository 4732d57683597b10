"""Maps generated pattern-pruned VGG16 (and small VGG) masks by every scheme and cost-model reading.

Usage:
  .venv/bin/python scripts/paper_vgg16.py [--seed 0] [--out-dir DIR] [--no-docs] [--append-results]

The paper's trained masks are not public, so this generates masks with the paper's per-layer
pattern counts and overall conv sparsity (`rramjax.presets.PAPER_VGG16`) [choice, the generator]:
  * every pattern has 4 entries and contains the centre (PatDNN's 4-entry patterns); each layer's
    library is that layer's pattern count drawn without replacement from the 56 such patterns;
  * a layer keeps a fraction `r_l = min(1, t * (N_max / N_l)^a)` of its units (`N_l` = the layer's
    weights, `a = 0.5` unless --profile-exponent), so small early layers stay denser, as pruned VGGs
    show; `t` is solved by bisection so that the kept weights hit the overall sparsity;
  * a unit is a kernel (kernel patterns) or, for OU-group-shared patterns, the kernels of a column
    group of `g` consecutive filters at one input channel (`g` = the packed mapping's group, 4):
    kept units are a uniform random subset, each taking a library pattern uniformly at random (a
    group's kernels share it); everything is drawn from `numpy.random.default_rng(seed)`.
The small VGG of the default job (`configs/fashion_mnist_small.py`: 28x28 inputs, channels
8,8,16,16,32,32 at width 0.25 and 16,16,32,32,64,64 at 0.5) gets 8 patterns per layer, 86% sparsity
and the ERK keep ratios (`prune.allocation='erk'`) the same way.

It prints, and writes between the `<!-- paper_vgg16:begin -->` / `end` markers of docs/MAPPER.md
unless --no-docs (and appends to docs/RESULTS.md with --append-results):
  (a) the paper-shaped CIFAR-10 masks under every scheme and cost-model reading, and the reading
      closest to the paper's area / energy / speedup (smallest sum of |log(ours / paper)|);
  (b) the OU-group-shared CIFAR-10 masks mapped `packed` at the default reading, against the
      targets (energy >= 4.5x, area >= 5x, equal_area_balanced speedup >= 3x), with a sweep of `a`;
  (c) the small VGGs;
  and the paper-shaped reproduction for the three data sets with its density-profile sweep.

The paper's table and hardware: docs/MODEL.md section 1; OU-group-shared patterns: section 8.

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (the VGG16 table in rramjax.presets).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys

import numpy as np

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import CostModel, adc_conversion_pj, format_table, map_network, pooled_out_hw, save_masks
from rramjax.plan import codes_to_masks, column_group_size
from rramjax.presets import PAPER_VGG16, SMALL_PLAN, VGG16_PLAN, conv_channels, pool_after

POOL_AFTER = pool_after(VGG16_PLAN)
PATTERN_SIZE = 4
CENTRE = 4
SMALL_PATTERNS, SMALL_SPARSITY, SMALL_SIDE = 8, 0.86, 28
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE, DATE = "AMD EPYC, 2 cores (CPU)", "2026-12-01"
# Cost-model readings: (name, CostModel); the first is the default.
READINGS = [(f"{ou}, {adc}", CostModel(ou_energy=ou, adc_energy=adc))
            for ou, adc in itertools.product(("per_ou", "per_row"), ("per_conversion", "bits_needed"))]
POLICIES = (("per_layer", "speedup"), ("equal_area", "speedup_equal_area"),
            ("equal_area_balanced", "speedup_balanced"), ("pipelined", "speedup_pipelined"))
# Scheme rows: (label, scheme, filter order).
SCHEME_ROWS = (("pattern", "pattern", "given"), ("packed", "packed", "given"),
               ("packed, greedy order", "packed", "greedy"), ("best (energy)", "best", "given"))
TARGETS = {"energy_efficiency": 4.5, "area_efficiency": 5.0, "speedup_balanced": 3.0}


def layer_shapes() -> list[tuple[int, int]]:
  """`(Cin, Cout)` of VGG16's 13 conv layers on RGB input."""
  return conv_channels(VGG16_PLAN, 3)


def small_shapes(width: float) -> list[tuple[int, int]]:
  """`(Cin, Cout)` of the default job's small VGG at `width` on 1-channel images (as the model rounds)."""
  return conv_channels([c if c == "M" else max(1, int(round(c * width))) for c in SMALL_PLAN], 1)


def keep_ratios(shapes, sparsity: float, exponent: float = 0.5) -> np.ndarray:
  """Per-layer unit keep ratios `min(1, t * (N_max / N_l)^exponent)` hitting the overall sparsity."""
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


def layer_mask(cin: int, cout: int, patterns: int, keep: float, rng, group: int = 1) -> np.ndarray:
  """A `(3, 3, Cin, Cout)` mask: a random `keep` share of units (kernels, or groups of `group`
  consecutive filters at one channel), each a random library pattern shared by the unit's kernels."""
  library = pattern_library(patterns, rng)
  groups = -(-cout // group)
  codes = np.zeros(cin * groups, np.int64)
  kept = rng.choice(cin * groups, size=int(round(keep * cin * groups)), replace=False)
  codes[kept] = rng.choice(library, size=len(kept))
  codes = np.repeat(codes.reshape(cin, groups), group, axis=1)[:, :cout]
  return np.moveaxis(codes_to_masks(codes), -1, 0).reshape(3, 3, cin, cout)


def generated_masks(shapes, patterns, ratios, seed: int, group: int = 1) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  return [layer_mask(cin, cout, count, keep, rng, group)
          for (cin, cout), count, keep in zip(shapes, patterns, ratios)]


def paper_masks(dataset: str, seed: int = 0, exponent: float = 0.5, group: int = 1) -> list[np.ndarray]:
  """The generated conv masks of one of the paper's VGG16 runs ('cifar10', 'cifar100', 'imagenet')."""
  run = PAPER_VGG16[dataset]
  shapes = layer_shapes()
  return generated_masks(shapes, run.patterns, keep_ratios(shapes, run.sparsity, exponent), seed, group)


def small_masks(width: float, seed: int = 0, group: int = 1) -> list[np.ndarray]:
  """Generated masks of the default job's small VGG: 8 patterns per layer, 86% sparsity, ERK ratios."""
  from rramjax.patterns import keep_ratios_for_sparsity  # pylint: disable=g-import-not-at-top (jax)
  shapes = small_shapes(width)
  ratios = keep_ratios_for_sparsity(shapes, [PATTERN_SIZE] * len(shapes), SMALL_SPARSITY, rule="erk")
  return generated_masks(shapes, [SMALL_PATTERNS] * len(shapes), ratios, seed, group)


def map_dataset(dataset: str, seed: int, hw: HardwareConfig, exponent: float = 0.5, group: int = 1, **kwargs):
  """Generates and maps one data set's VGG16 (FC classifier as extra layers); returns (report, masks)."""
  run = PAPER_VGG16[dataset]
  masks = paper_masks(dataset, seed, exponent, group)
  extra = {f"fc_{i}": (np.ones(shape, bool), 1) for i, shape in enumerate(run.classifier)}
  report = map_network(masks, pooled_out_hw(len(masks), run.input_size, POOL_AFTER), hw, extra_layers=extra,
                       **kwargs)
  return report, masks


def _sparsity(report) -> float:
  kept = sum(layer["kept_weights"] for layer in report["layers"])
  return 1 - kept / sum(layer["weights"] for layer in report["layers"])


def comparison_table(reports: dict) -> str:
  """Markdown table: our conv-layer ratios (pattern scheme, default reading) beside the paper's."""
  lines = ["| dataset | sparsity (ours) | arrays base -> pattern (lower bound) | area eff. ours / paper "
           "| energy eff. ours / paper | speedup ours / equal-area / balanced / paper |",
           "|---|---|---|---|---|---|"]
  for dataset, report in reports.items():
    totals, ratio, paper = report["totals"], report["totals"]["ratios"], PAPER_VGG16[dataset]
    lines.append(
        f"| {dataset} | {100 * _sparsity(report):.2f}% | {totals['baseline']['arrays']} -> "
        f"{totals['pattern']['arrays']} ({totals['pattern']['arrays_lower_bound']}) | "
        f"{ratio['area_efficiency']:.2f}x / {paper.area:.2f}x | {ratio['energy_efficiency']:.2f}x / "
        f"{paper.energy:.2f}x | {ratio['speedup']:.2f}x / {ratio['speedup_equal_area']:.2f}x / "
        f"{ratio['speedup_balanced']:.2f}x / {paper.speedup:.2f}x |")
  return "\n".join(lines)


def energy_table(reports: dict) -> str:
  """Markdown table: conv energy per image by component, baseline and every scheme."""
  lines = ["| dataset | mapping | RRAM (uJ) | ADC (uJ) | DAC (uJ) | total (uJ) | OU activations (M) |",
           "|---|---|---|---|---|---|---|"]
  for dataset, report in reports.items():
    for part in ("baseline", *report["schemes"]):
      t = report["totals"][part]
      lines.append(f"| {dataset} | {part} | {t['energy_rram_pj'] / 1e6:.1f} | {t['energy_adc_pj'] / 1e6:.1f} | "
                   f"{t['energy_dac_pj'] / 1e6:.2f} | {t['energy_pj'] / 1e6:.1f} | {t['ou_activations'] / 1e6:.1f} |")
  return "\n".join(lines)


def _scheme_ratios(masks_report, scheme_row, reading):
  """The conv ratios of one scheme row at one cost-model reading."""
  _, scheme, order = scheme_row
  report = masks_report(schemes=(scheme,), filter_order=order, cost_model=reading)
  return report["totals"]["ratios"]


def readings_table(masks_report, paper) -> tuple[str, str]:
  """Markdown table of every scheme x cost-model reading x latency policy, and the closest reading.

  Args:
    masks_report: `(**map_network options) -> report` for fixed masks.
    paper: the paper's (area, energy, speedup).

  Returns:
    `(table, closest)`: the table and a sentence naming the reading closest to the paper's figures.
  """
  lines = ["| scheme | energy reading (ou_energy, adc_energy) | area eff. | energy eff. | "
           + " | ".join(f"speedup {policy}" for policy, _ in POLICIES) + " |",
           "|---|---|---|---|" + "---|" * len(POLICIES)]
  candidates = []
  for row in SCHEME_ROWS:
    for name, reading in READINGS:
      ratio = _scheme_ratios(masks_report, row, reading)
      lines.append(f"| {row[0]} | {name} | {ratio['area_efficiency']:.2f}x | {ratio['energy_efficiency']:.2f}x | "
                   + " | ".join(f"{ratio[key]:.2f}x" for _, key in POLICIES) + " |")
      for policy, key in POLICIES:
        ours = (ratio["area_efficiency"], ratio["energy_efficiency"], ratio[key])
        distance = sum(abs(math.log(o / p)) for o, p in zip(ours, paper))
        candidates.append((distance, row[0], name, policy, ours))
  distance, scheme, name, policy, ours = min(candidates)
  closest = (f"Closest to the paper's {paper[0]:.2f} / {paper[1]:.2f} / {paper[2]:.2f} (area / energy / "
             f"speedup; smallest sum of |log(ours / paper)|, {distance:.3f}): **{scheme}, {name}, latency "
             f"{policy}**: {ours[0]:.2f}x / {ours[1]:.2f}x / {ours[2]:.2f}x.")
  return "\n".join(lines), closest


def _target_line(ratio) -> str:
  return "; ".join(f"{key} {ratio[key]:.2f}x (target >= {goal}x: {'met' if ratio[key] >= goal else 'NOT met'})"
                   for key, goal in TARGETS.items())


def mask_bounds(report, hw: HardwareConfig) -> tuple[float, float]:
  """`(area, energy)` efficiency: the most any mapping with one layer per array can gain on these masks.

  Area: the baseline's arrays over `sum_l ceil(kept_weights_l * cells_per_weight / (R * C))` (a
  layer's kept cells need at least that many whole arrays). Energy, at the default reading (per_ou,
  per_conversion): per pixel and input slice, a layer's kept cells need at least
  `cells / (ou_rows * ou_cols)` OU activations and `cells / ou_rows` ADC conversions (an OU holds at
  most `ou_rows x ou_cols` cells, a conversion digitises one column of at most `ou_rows` of them);
  DAC energy counted as 0. The layers with most pixels per weight weigh most, so their density sets it.
  """
  conv = [layer for layer in report["layers"] if layer["kind"] == "conv3x3"]
  arrays = sum(math.ceil(layer["kept_weights"] * hw.cells_per_weight / (hw.array_rows * hw.array_cols))
               for layer in conv)
  reads = sum(layer["kept_weights"] * hw.cells_per_weight * layer["out_pixels"] * hw.input_slices for layer in conv)
  energy = reads * (hw.e_ou_pj / (hw.ou_rows * hw.ou_cols) + adc_conversion_pj(hw, CostModel()) / hw.ou_rows)
  base = report["totals"]["baseline"]
  return base["arrays"] / arrays, base["energy_pj"] / energy


def _bound_clause(area_bound: float, energy_bound: float) -> str:
  """Which targets the masks' bounds put out of any mapping's reach."""
  out = [name for name, bound in (("area", area_bound), ("energy", energy_bound))
         if bound < TARGETS[f"{name}_efficiency"]]
  return f"; no mapping of these masks reaches the {' and '.join(out)} target{'s' * (len(out) > 1)}" if out else ""


def group_table(seed: int, hw: HardwareConfig, exponents=(0.0, 0.25, 0.5, 1.0)) -> tuple[str, str]:
  """CIFAR-10 masks with OU-group-shared patterns: every scheme at the default reading, the targets
  (packed, profile a = 0.5), the masks' own bounds and a sweep of the profile exponent."""
  group = column_group_size(hw)
  lines = ["| profile exponent a | masks | scheme | sparsity | arrays base -> scheme | area eff. (bound) | "
           "energy eff. (bound) | speedup per_layer | equal_area | equal_area_balanced | pipelined |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  verdict = ""
  for exponent in exponents:
    for label, unit in (("kernel patterns", 1), (f"group-shared (g={group})", group)):
      report, _ = map_dataset("cifar10", seed, hw, exponent, unit, schemes=("packed", "pattern", "best"))
      area_bound, energy_bound = mask_bounds(report, hw)
      for scheme in ("pattern", "packed", "best"):
        ratio, totals = report["totals"]["ratios_by_scheme"][scheme], report["totals"]
        lines.append(f"| {exponent} | {label} | {scheme} | {100 * _sparsity(report):.2f}% | "
                     f"{totals['baseline']['arrays']} -> {totals[scheme]['arrays']} | "
                     f"{ratio['area_efficiency']:.2f}x ({area_bound:.2f}x) | "
                     f"{ratio['energy_efficiency']:.2f}x ({energy_bound:.2f}x) | "
                     + " | ".join(f"{ratio[key]:.2f}x" for _, key in POLICIES) + " |")
      if exponent == 0.5 and unit == group:
        verdict = (f"Group-shared masks, `packed`, default reading, a = 0.5: "
                   f"{_target_line(report['totals']['ratios_by_scheme']['packed'])}. The masks' own bounds "
                   f"(`mask_bounds`: one layer per array, every OU activation reading only kept cells): "
                   f"area {area_bound:.2f}x, energy {energy_bound:.2f}x{_bound_clause(area_bound, energy_bound)}.")
  return "\n".join(lines), verdict


def small_table(seed: int, hw: HardwareConfig) -> str:
  """The default job's small VGG (widths 0.25 and 0.5), kernel and group-shared masks, every scheme."""
  group = column_group_size(hw)
  lines = ["| width (channels) | masks | scheme | sparsity | arrays base -> scheme | area eff. | energy eff. | "
           "speedup per_layer | equal_area_balanced | pipelined |", "|---|---|---|---|---|---|---|---|---|---|"]
  for width in (0.25, 0.5):
    channels = ",".join(str(cout) for _, cout in small_shapes(width))
    for label, unit in (("kernel patterns", 1), (f"group-shared (g={group})", group)):
      masks = small_masks(width, seed, unit)
      sides = pooled_out_hw(len(masks), SMALL_SIDE, pool_after(SMALL_PLAN))
      report = map_network(masks, sides, hw, schemes=("pattern", "packed", "best"))
      for scheme in ("pattern", "packed", "best"):
        ratio, totals = report["totals"]["ratios_by_scheme"][scheme], report["totals"]
        lines.append(f"| {width} ({channels}) | {label} | {scheme} | {100 * _sparsity(report):.2f}% | "
                     f"{totals['baseline']['arrays']} -> {totals[scheme]['arrays']} | "
                     f"{ratio['area_efficiency']:.2f}x | {ratio['energy_efficiency']:.2f}x | "
                     f"{ratio['speedup']:.2f}x | {ratio['speedup_balanced']:.2f}x | "
                     f"{ratio['speedup_pipelined']:.2f}x |")
  return "\n".join(lines)


def sensitivity_table(seed: int, hw: HardwareConfig, exponents=(0.0, 0.25, 0.5, 1.0)) -> str:
  """Markdown table: CIFAR-10 conv ratios (pattern scheme) as the density profile exponent `a` varies."""
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


def results_text(args, hw: HardwareConfig) -> str:
  """Every table of the module doc, as markdown."""
  reports = {dataset: map_dataset(dataset, args.seed, hw, args.profile_exponent,
                                  schemes=("pattern", "packed", "best"))[0] for dataset in PAPER_VGG16}
  masks = paper_masks("cifar10", args.seed, args.profile_exponent)
  sides = pooled_out_hw(len(masks), PAPER_VGG16["cifar10"].input_size, POOL_AFTER)
  paper = PAPER_VGG16["cifar10"]
  readings, closest = readings_table(lambda **kw: map_network(masks, sides, hw, **kw),
                                     (paper.area, paper.energy, paper.speedup))
  groups, verdict = group_table(args.seed, hw)
  command = (f".venv/bin/python scripts/paper_vgg16.py --seed {args.seed} "
             f"--profile-exponent {args.profile_exponent}")
  return (f"Command: `{command}` ({DEVICE}; {DATE}). Conv layers only (the FC classifier is mapped "
          f"the baseline way and reported apart by the script). Paper hardware (512x512 arrays, 9x8 OU, "
          f"8-bit weights in two 4-bit cells, 4-bit DAC slices, 8-bit ADC).\n\n"
          f"**(a) Paper-shaped CIFAR-10 masks (kernel patterns, a = {args.profile_exponent}), every "
          f"scheme and cost-model reading.** Speedups are against the baseline's per_layer latency.\n\n"
          f"{readings}\n\n{closest}\n\n"
          f"**(b) OU-group-shared patterns** (CIFAR-10 counts and sparsity), default reading "
          f"(per_ou, per_conversion):\n\n{groups}\n\n{verdict}\n\n"
          f"**(c) The default job's small VGG** (28x28 Fashion-MNIST shapes, 8 patterns per layer, "
          f"86% sparsity, ERK keep ratios), default reading:\n\n{small_table(args.seed, hw)}\n\n"
          f"**Paper-shaped reproduction, three data sets** (default reading):\n\n"
          f"{comparison_table(reports)}\n\n{energy_table(reports)}\n\n"
          f"CIFAR-10, pattern scheme, sensitivity to the density profile exponent `a` (same seed):\n\n"
          f"{sensitivity_table(args.seed, hw)}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--profile-exponent", type=float, default=0.5, help="density profile exponent a")
  parser.add_argument("--out-dir", default=None, help="also save each data set's masks here as .npz")
  parser.add_argument("--tables", action="store_true", help="also print the per-layer tables")
  parser.add_argument("--no-docs", action="store_true", help="do not touch docs/MAPPER.md")
  parser.add_argument("--append-results", action="store_true", help="append the tables to docs/RESULTS.md")
  args = parser.parse_args(argv)
  hw = HardwareConfig()
  for dataset, run in PAPER_VGG16.items():
    if args.tables or args.out_dir:
      report, masks = map_dataset(dataset, args.seed, hw, args.profile_exponent,
                                  schemes=("pattern", "packed", "best"))
    if args.tables:
      print(f"== {dataset} (seed {args.seed})\n{format_table(report)}\n")
    if args.out_dir:
      os.makedirs(args.out_dir, exist_ok=True)
      save_masks(os.path.join(args.out_dir, f"vgg16_{dataset}.npz"), masks,
                 pooled_out_hw(len(masks), run.input_size, POOL_AFTER)[:, 0])
  results = results_text(args, hw)
  print(results)
  if not args.no_docs:
    write_mapper_doc(results)
  if args.append_results:
    append_results(results)
  return 0


def append_results(results: str) -> None:
  """Appends the "Mapper: schemes and cost-model readings" section to docs/RESULTS.md (append only)."""
  path = os.path.join(REPO, "docs", "RESULTS.md")
  section = (f"\n## Mapper: packed and best schemes, cost-model readings (generated VGG16 and small VGG masks)\n\n"
             f"Device: {DEVICE}. Date: {DATE}. Generated masks (generator: scripts/paper_vgg16.py; model "
             f"and definitions: docs/MAPPER.md).\n\n{results}\n")
  new = not os.path.exists(path)
  with open(path, "a") as handle:
    handle.write("# Results\n" if new else "")
    handle.write(section)


if __name__ == "__main__":
  sys.exit(main())
