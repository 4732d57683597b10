"""What pattern pruning produced, in the paper's table columns, as text and as a picture.

References:
  Yu et al., arXiv:2010.06156 (table: sparsity, patterns per conv layer, total patterns).
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138.
"""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from rramjax.errors import ConfigError
from rramjax.patterns.codes import KERNEL_POSITIONS, pattern_codes, pattern_picture, pattern_size


def _layer_report(w, mask, library) -> dict:
  mask = np.asarray(mask)
  codes = np.asarray(pattern_codes(mask)).reshape(-1)
  used = collections.Counter(int(c) for c in codes if c)
  library = [int(c) for c in (library if library is not None else sorted(used))]
  energy = np.square(np.asarray(w, np.float64))
  kept_weights = int(np.count_nonzero(mask))
  return {
      "shape": tuple(mask.shape),
      "library": library,
      "pictures": [pattern_picture(c) for c in library],
      "usage": [used.get(c, 0) for c in library],
      "outside_library": {c: n for c, n in used.items() if c not in library},
      "patterns_used": len(used),
      "kernels_total": int(codes.size),
      "kernels_kept": int(np.count_nonzero(codes)),
      "weights_total": int(mask.size),
      "weights_kept": kept_weights,
      "weight_sparsity": 1.0 - kept_weights / mask.size,
      "mean_pattern_size": float(pattern_size(codes[codes > 0]).mean()) if codes.any() else 0.0,
      "kept_energy": float(np.sum(energy * (mask != 0)) / max(energy.sum(), 1e-300)),
  }


def pattern_report(kernels: Sequence, masks: Sequence, libraries: Sequence | None = None) -> dict:
  """Per-layer and total pattern statistics of a pruned network.

  Args:
    kernels: HWIO conv kernels (dense or pruned; used for the kept squared weight).
    masks: HWIO 0/1 masks, one per kernel.
    libraries: per layer pattern codes, or None to list the patterns the masks use.

  Returns:
    dict with 'layers' (per layer: library, pictures, usage count per library pattern,
    outside_library {code: count}, patterns_used, kernels/weights total and kept, weight_sparsity,
    mean_pattern_size, kept_energy = fraction of squared weight kept) and the paper's totals:
    'overall_sparsity', 'pattern_counts' (distinct patterns used per layer), 'total_patterns',
    'kernels_kept', 'kernels_total', 'weights_kept', 'weights_total'.
  """
  if len(kernels) != len(masks) or (libraries is not None and len(libraries) != len(masks)):
    raise ConfigError(f"pattern_report needs one mask (and library) per kernel: {len(kernels)} "
                      f"kernels, {len(masks)} masks, "
                      f"{'no' if libraries is None else len(libraries)} libraries.")
  libraries = libraries if libraries is not None else [None] * len(masks)
  layers = [_layer_report(w, m, lib) for w, m, lib in zip(kernels, masks, libraries)]
  totals = {key: sum(layer[key] for layer in layers)
            for key in ("kernels_kept", "kernels_total", "weights_kept", "weights_total")}
  counts = [layer["patterns_used"] for layer in layers]
  return {"layers": layers, **totals, "pattern_counts": counts, "total_patterns": sum(counts),
          "overall_sparsity": 1.0 - totals["weights_kept"] / max(totals["weights_total"], 1)}


def format_pattern_report(report: dict, pictures: bool = True) -> str:
  """Renders `pattern_report` as text: one row per layer, the totals, and each library's pictures."""
  lines = [f"{'layer':>5} {'Cin x Cout':>11} {'patterns':>8} {'kernels kept':>14} "
           f"{'mean k':>6} {'sparsity':>8} {'kept |W|^2':>10}"]
  for index, layer in enumerate(report["layers"]):
    cin, cout = layer["shape"][2:]
    lines.append(f"{index:>5} {f'{cin} x {cout}':>11} {layer['patterns_used']:>8} "
                 f"{layer['kernels_kept']:>6}/{layer['kernels_total']:<7} "
                 f"{layer['mean_pattern_size']:>6.2f} {layer['weight_sparsity']:>8.2%} "
                 f"{layer['kept_energy']:>10.2%}")
  lines.append(f"overall sparsity {report['overall_sparsity']:.2%}; patterns per conv layer "
               f"{','.join(map(str, report['pattern_counts']))}; total {report['total_patterns']}")
  if pictures:
    for index, layer in enumerate(report["layers"]):
      lines += [f"layer {index} library (usage):", _pictures_row(layer["library"], layer["usage"])]
  return "\n".join(lines)


def _pictures_row(library, usage) -> str:
  rows = [pattern_picture(c).split("\n") for c in library]
  labels = [f"{n:<5d}"[:5] for n in usage]
  return "\n".join(["  ".join(f"{r[line]:<5}" for r in rows) for line in range(3)] +
                   ["  ".join(labels)])


def plot_libraries(libraries: Sequence, path: str, usage: Sequence | None = None) -> str:
  """Draws the per-layer pattern libraries as 3x3 pictures, one row per layer, into a PNG.

  Args:
    libraries: per layer, pattern codes.
    path: output PNG path.
    usage: optional per layer, kernel count per library pattern (shown above each picture).

  Returns:
    `path`.
  """
  import matplotlib  # deferred: only plotting needs it, and Agg must be chosen before pyplot loads
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  libraries = [[int(c) for c in lib] for lib in libraries]
  if not libraries or not max(len(lib) for lib in libraries):
    raise ConfigError("plot_libraries needs at least one nonempty library.")
  width = max(len(lib) for lib in libraries)
  fig, axes = plt.subplots(len(libraries), width, squeeze=False,
                           figsize=(0.9 * width + 0.6, 1.0 * len(libraries) + 0.3))
  for row, lib in enumerate(libraries):
    for col, ax in enumerate(axes[row]):
      ax.set_xticks([]), ax.set_yticks([])
      if col >= len(lib):
        ax.axis("off")
        continue
      bits = [(lib[col] >> i) & 1 for i in range(KERNEL_POSITIONS)]
      ax.imshow(np.reshape(bits, (3, 3)), cmap="Greys", vmin=0, vmax=1)
      if usage is not None:
        ax.set_title(str(usage[row][col]), fontsize=7)
    axes[row][0].set_ylabel(f"conv {row}", fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
