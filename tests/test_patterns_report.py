"""Pattern report and library plot (mask files: tests/test_mapper_io.py)."""

import numpy as np
import pytest

from rramjax.patterns import (extract_library_greedy, format_pattern_report, pattern_report,
                              plot_libraries, prune_layer)


@pytest.fixture(scope="module")
def pruned():
  rng = np.random.default_rng(0)
  kernels = [rng.normal(size=s).astype(np.float32) for s in [(3, 3, 3, 8), (3, 3, 8, 16)]]
  libraries = [extract_library_greedy(w, 4, sizes=4) for w in kernels]
  masks = [np.asarray(prune_layer(w, lib, r)) for w, lib, r in zip(kernels, libraries, [1.0, 0.5])]
  return kernels, masks, libraries


def test_report_counts_match_the_masks(pruned):
  kernels, masks, libraries = pruned
  report = pattern_report(kernels, masks, libraries)
  kept = sum(int(m.sum()) for m in masks)
  total = sum(m.size for m in masks)
  assert report["overall_sparsity"] == pytest.approx(1 - kept / total)
  assert report["kernels_kept"] == 24 + 64
  for layer, mask in zip(report["layers"], masks):
    assert sum(layer["usage"]) == layer["kernels_kept"]
    assert layer["outside_library"] == {}
    assert layer["weight_sparsity"] == pytest.approx(1 - mask.sum() / mask.size)
  assert report["total_patterns"] == sum(report["pattern_counts"])
  text = format_pattern_report(report)
  assert "overall sparsity" in text and "#" in text


def test_report_without_libraries_lists_used_patterns(pruned):
  kernels, masks, _ = pruned
  report = pattern_report(kernels, masks)
  for layer in report["layers"]:
    assert all(n > 0 for n in layer["usage"])


def test_plot_libraries_writes_a_png(pruned, tmp_path):
  kernels, masks, libraries = pruned
  usage = [layer["usage"] for layer in pattern_report(kernels, masks, libraries)["layers"]]
  path = plot_libraries(libraries, str(tmp_path / "libraries.png"), usage)
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
