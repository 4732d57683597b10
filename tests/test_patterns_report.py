"""Pattern report, library plot and the mask npz format the mapper reads."""

import numpy as np
import pytest

from rramjax.errors import MaskError
from rramjax.patterns import (extract_library_greedy, format_pattern_report, load_masks_npz,
                              pattern_report, plot_libraries, prune_layer, save_masks_npz)


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


def test_masks_npz_round_trip(pruned, tmp_path):
  _, masks, _ = pruned
  path = save_masks_npz(tmp_path / "masks", masks)
  with np.load(path) as data:
    assert sorted(data.files) == ["conv_00", "conv_01"]
    assert data["conv_00"].dtype == np.uint8
  for saved, loaded in zip(masks, load_masks_npz(path)):
    np.testing.assert_array_equal(saved, loaded)


def test_bad_masks_raise_mask_error(tmp_path):
  with pytest.raises(MaskError, match="only 0 and 1"):
    save_masks_npz(tmp_path / "m.npz", [np.full((3, 3, 1, 1), 2)])
  with pytest.raises(MaskError, match="HWIO"):
    save_masks_npz(tmp_path / "m.npz", [np.ones((3, 3, 1))])
  np.savez(tmp_path / "gap.npz", conv_00=np.ones((3, 3, 1, 1)), conv_02=np.ones((3, 3, 1, 1)))
  with pytest.raises(MaskError, match="without gaps"):
    load_masks_npz(tmp_path / "gap.npz")
  with pytest.raises(MaskError, match="Cannot read"):
    load_masks_npz(tmp_path / "missing.npz")
