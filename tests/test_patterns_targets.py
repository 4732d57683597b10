"""Sparsity allocation across layers and validation of pruning targets."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from rramjax.errors import ConfigError
from rramjax.patterns import keep_ratios_for_sparsity, validate_targets

LAYERS = st.lists(st.tuples(st.integers(1, 64), st.integers(1, 64), st.floats(1.0, 9.0)),
                  min_size=2, max_size=6)


def _sparsity(shapes, sizes, ratios):
  kernels = np.array([cin * cout for cin, cout in shapes], float)
  return 1 - np.sum(np.array(ratios) * kernels * sizes) / np.sum(9 * kernels)


@settings(max_examples=30, deadline=None)
@given(LAYERS, st.floats(0.0, 1.0), st.sampled_from(["uniform", "first_dense"]))
def test_keep_ratios_hit_the_target_exactly(layers, fraction, rule):
  shapes = [(cin, cout) for cin, cout, _ in layers]
  sizes = np.array([k for _, _, k in layers])
  kernels = np.array([cin * cout for cin, cout in shapes], float)
  least = 1 - np.sum(kernels * sizes) / np.sum(9 * kernels)
  most = 1 - (kernels[0] * sizes[0] / np.sum(9 * kernels) if rule == "first_dense" else 0.0)
  assume(most - least > 1e-6)
  target = least + fraction * (most - least) * 0.999  # inside the reachable range
  ratios = keep_ratios_for_sparsity(shapes, sizes, target, rule)
  assert all(0 < r <= 1 for r in ratios)
  assert _sparsity(shapes, sizes, ratios) == pytest.approx(target, abs=1e-9)
  if rule == "first_dense":
    assert ratios[0] == 1.0 and len(set(ratios[1:])) == 1
  else:
    assert len(set(ratios)) == 1


def test_hwio_shapes_are_accepted():
  ratios = keep_ratios_for_sparsity([(3, 3, 16, 32), (3, 3, 32, 32)], [4, 4], 0.8)
  assert ratios == pytest.approx([0.45, 0.45])


@pytest.mark.parametrize("args, message", [
    (([(16, 16)], [4], 0.3), "below what the patterns alone give"),
    (([(3, 16), (16, 16)], [4, 4], 0.99, "first_dense"), "at most"),
    (([(16, 16)], [4, 4], 0.8), "one pattern size per layer"),
    (([(16, 16)], [10], 0.8), r"\(0, 9\]"),
    (([(16, 16)], [4], 1.0), r"\[0, 1\)"),
    (([(16, 16)], [4], 0.8, "greedy"), "Unknown allocation rule"),
])
def test_unreachable_or_bad_targets_raise(args, message):
  with pytest.raises(ConfigError, match=message):
    keep_ratios_for_sparsity(*args)


def test_validate_targets_accepts_good_targets():
  validate_targets(3, [2, 8, 511], [1.0, 0.5, 0.01])


@pytest.mark.parametrize("args, message", [
    ((3, [2, 2], [1.0, 1.0, 1.0]), "patterns_per_layer has 2 entries but the network has 3"),
    ((2, [2, 2], [1.0]), "keep_ratios has 1 entries"),
    ((2, [2, 0], [1.0, 1.0]), r"patterns_per_layer\[1\] must be an integer in 1..511"),
    ((1, [512], [1.0]), "1..511"),
    ((2, [2, 2], [1.0, 0.0]), r"keep_ratios\[1\] .* \(0, 1\]"),
    ((1, [2], [1.2]), r"\(0, 1\]"),
])
def test_bad_targets_raise_clear_config_errors(args, message):
  with pytest.raises(ConfigError, match=message):
    validate_targets(*args)


@settings(max_examples=30, deadline=None)
@given(LAYERS, st.floats(0.0, 0.999))
def test_erk_ratios_hit_the_target_and_follow_the_score(layers, fraction):
  shapes = [(cin, cout) for cin, cout, _ in layers]
  sizes = np.array([k for _, _, k in layers])
  kernels = np.array([cin * cout for cin, cout in shapes], float)
  least = 1 - np.sum(kernels * sizes) / np.sum(9 * kernels)
  target = least + fraction * (1 - least) * 0.999
  ratios = np.array(keep_ratios_for_sparsity(shapes, sizes, target, "erk"))
  assert np.all((ratios > 0) & (ratios <= 1))
  assert _sparsity(shapes, sizes, ratios) == pytest.approx(target, abs=1e-9)
  score = np.array([(cin + cout) / (cin * cout) for cin, cout in shapes])
  partial = ratios < 1
  # Below the cap, keep ratio / score is one constant; a layer kept whole scores at least as high.
  if partial.any():
    np.testing.assert_allclose(ratios[partial] / score[partial], (ratios / score)[partial][0], rtol=1e-9)
    assert np.all(score[~partial] >= score[partial].max() * (1 - 1e-9))


def test_erk_keeps_narrow_layers_denser():
  ratios = keep_ratios_for_sparsity([(1, 8), (8, 8), (16, 32), (32, 32)], [3.0] * 4, 0.86, "erk")
  assert ratios[0] == 1.0 and ratios[1] > ratios[2] > ratios[3]


@pytest.mark.parametrize("layers, ou_rows, cins, expected", [
    ("all", 9, (1, 16, 32), (4, 4, 4)),
    ("multi_ou", 9, (1, 16, 32), (1, 4, 4)),  # a one-channel first layer fits one OU of 9 rows
    ("multi_ou", 18, (1, 2, 3), (1, 1, 4)),
])
def test_ou_group_layers_choose_each_layers_group(layers, ou_rows, cins, expected):
  from conftest import ROOT  # pylint: disable=g-import-not-at-top
  from rramjax.config import load_config  # pylint: disable=g-import-not-at-top
  from rramjax.train import targets  # pylint: disable=g-import-not-at-top
  spec = str(ROOT / "configs" / "fashion_mnist_small.py:smoke")
  config = load_config(spec, [
      "prune.granularity='ou_group'", f"prune.ou_group_layers='{layers}'", f"hardware.ou_rows={ou_rows}"])
  kernels = [np.zeros((3, 3, cin, 8), np.float32) for cin in cins]
  assert targets.granularity(config, kernels) == ("ou_group", expected)
  with pytest.raises(ConfigError, match="ou_group_layers"):
    load_config(spec, ["prune.ou_group_layers='some'"])


def test_multi_ou_prunes_the_one_channel_layer_per_kernel_and_the_others_per_group(tmp_path):
  """start_pruning + hard_prune with prune.ou_group_layers='multi_ou' on the smoke model: each
  layer's masks are `prune_layer` at that layer's granularity (the first, 1 channel: kernel)."""
  from conftest import ROOT  # pylint: disable=g-import-not-at-top
  from rramjax import data  # pylint: disable=g-import-not-at-top
  from rramjax.config import load_config  # pylint: disable=g-import-not-at-top
  from rramjax.patterns import prune_layer  # pylint: disable=g-import-not-at-top
  from rramjax.train import pruning  # pylint: disable=g-import-not-at-top
  from rramjax.train.loop import Trainer  # pylint: disable=g-import-not-at-top
  from rramjax.train.step import conv_kernels  # pylint: disable=g-import-not-at-top
  config = load_config(str(ROOT / "configs" / "fashion_mnist_small.py:smoke"), [
      "prune.granularity='ou_group'", "prune.ou_group_layers='multi_ou'"])
  rng = np.random.default_rng(0)
  split = lambda n: data.ArrayDataset("fashion_mnist", rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                                      rng.integers(0, 10, n).astype(np.int32), 10)
  trainer = Trainer(config, tmp_path, progress=False, datasets=data.Splits(split(64), split(32)))
  state = pruning.start_pruning(config, trainer.initial_state())
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  masks = pruning.hard_prune(config, state)["masks"]
  ratios = [float(r) for r in np.asarray(state["keep_ratios"])]
  assert kernels[0].shape[2] == 1 and all(k.shape[2] > 1 for k in kernels[1:])
  for layer, (w, m, lib, r) in enumerate(zip(kernels, masks, state["libraries"], ratios)):
    args = () if layer == 0 else ("ou_group", 4)
    np.testing.assert_array_equal(np.asarray(m, bool), np.asarray(prune_layer(w, lib, r, *args), bool))
