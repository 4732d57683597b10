"""Filter groups for OU-group pattern pruning: the order, and the network permuted to it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings, strategies as st

from rramjax.config import load_config
from rramjax.errors import ConfigError
from rramjax.models.vgg import VGG, permute_filters
from rramjax.patterns import group_order, grouped_kept_energy, project_to_library
from rramjax.train import pruning, targets
from rramjax.train.step import conv_kernels

SETTINGS = settings(max_examples=25, deadline=None)


def _library(seed, size):
  return tuple(int(c) for c in np.random.default_rng(seed).choice(np.arange(1, 512), size, False))


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.sampled_from([(2, 5), (3, 8), (4, 9), (6, 16)]),
       st.sampled_from([2, 3, 4]), st.sampled_from([1, 3, 8]))
def test_group_order_is_a_permutation_that_keeps_at_least_the_given_orders_weight(seed, shape,
                                                                                 group, k):
  cin, cout = shape
  w = np.random.default_rng(seed).normal(size=(3, 3, cin, cout)).astype(np.float32)
  lib = _library(seed, k)
  order = group_order(w, lib, group)
  assert sorted(order.tolist()) == list(range(cout))
  given_kept = grouped_kept_energy(w, lib, group)
  assert grouped_kept_energy(w, lib, group, order) >= given_kept
  # never more than each kernel choosing its own pattern (groups of one)
  assert grouped_kept_energy(w, lib, group, order) <= grouped_kept_energy(w, lib, 1) * (1 + 1e-9)


def test_grouped_kept_energy_is_what_the_group_projection_keeps():
  rng = np.random.default_rng(3)
  w = rng.normal(size=(3, 3, 5, 10)).astype(np.float32)
  lib = _library(3, 6)
  order = rng.permutation(10)
  projected, _ = project_to_library(w[..., order], lib, "ou_group", 4)
  assert grouped_kept_energy(w, lib, 4, order) == pytest.approx(float(np.sum(np.square(projected))),
                                                                rel=1e-5)


def test_group_order_finds_planted_groups():
  """Filters scattered so that no given group agrees: the order puts each planted group back
  together, so sharing the pattern loses nothing (all the weight lies inside library patterns)."""
  rng = np.random.default_rng(0)
  lib = (0b000011011, 0b110110000, 0b010010010, 0b000111000)  # four 4- and 3-tap patterns
  cin, groups, size = 6, 4, 4
  w = np.zeros((9, cin, groups * size), np.float32)
  for g in range(groups):
    for c in range(cin):
      code = lib[rng.integers(len(lib))]
      taps = np.flatnonzero((code >> np.arange(9)) & 1)
      for f in range(g * size, (g + 1) * size):
        w[taps, c, f] = rng.uniform(0.5, 1.5, len(taps))
  scatter = rng.permutation(groups * size)
  w = w[:, :, scatter].reshape(3, 3, cin, groups * size)
  everything = float(np.sum(np.square(w)))
  assert grouped_kept_energy(w, lib, size) < 0.9 * everything
  order = group_order(w, lib, size)
  assert grouped_kept_energy(w, lib, size, order) == pytest.approx(everything, rel=1e-6)


def test_group_order_of_groups_of_one_is_the_given_order():
  w = np.random.default_rng(1).normal(size=(3, 3, 2, 7)).astype(np.float32)
  np.testing.assert_array_equal(group_order(w, (1, 2, 3), 1), np.arange(7))


def _pure(model):
  _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return nnx.to_pure_dict(params), nnx.to_pure_dict(stats)


def _random_pure(model, seed):
  """A model's pure dicts with every weight and statistic random (the initial head is all zero),
  so any entry a permutation leaves behind changes the output."""
  params, stats = _pure(model)
  rng = np.random.default_rng(seed)
  params = jax.tree_util.tree_map(lambda v: jnp.asarray(rng.normal(0, 0.5, v.shape), v.dtype), params)
  stats = jax.tree_util.tree_map(lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape), v.dtype), stats)
  return params, stats


def _apply(plan, hidden, params, stats, x):
  model = VGG(plan, 5, in_channels=2, input_size=8, hidden=hidden, rngs=nnx.Rngs(9))
  _, p, b = nnx.split(model, nnx.Param, nnx.BatchStat)
  nnx.replace_by_pure_dict(p, params)
  nnx.replace_by_pure_dict(b, stats)
  nnx.update(model, p, b)
  model.eval()
  return np.asarray(model(x))


@pytest.mark.parametrize("hidden", [(), (6,)])
def test_permuted_filters_compute_the_same_network(hidden):
  plan = (4, "M", 6, 6, "M")
  params, stats = _random_pure(
      VGG(plan, 5, in_channels=2, input_size=8, hidden=hidden, rngs=nnx.Rngs(0)), 0)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(3, 8, 8, 2)), jnp.float32)
  before = _apply(plan, hidden, params, stats, x)
  new_params, new_stats = params, stats
  orders = [rng.permutation(cout) for cout in (4, 6, 6)]
  for layer, order in enumerate(orders):
    new_params, new_stats = permute_filters(new_params, new_stats, layer, order)
  np.testing.assert_array_equal(new_params["convs"][0]["kernel"],
                                np.asarray(params["convs"][0]["kernel"])[..., orders[0]])
  np.testing.assert_allclose(_apply(plan, hidden, new_params, new_stats, x), before, rtol=1e-5,
                             atol=1e-5 * np.abs(before).max())


def test_permute_filters_rejects_an_order_that_is_not_a_permutation():
  params, stats = _pure(VGG((4, "M"), 5, in_channels=2, input_size=8, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="permutation of the layer's 4 filters"):
    permute_filters(params, stats, 0, [0, 1, 1, 2])


def _state():
  params, stats = _random_pure(VGG((8, "M", 8, "M"), 5, in_channels=2, input_size=8,
                                   rngs=nnx.Rngs(0)), 5)
  return {"params": params, "batch_stats": stats}


def test_group_filters_reorders_only_with_greedy_ou_group_pruning():
  config = load_config("configs/fashion_mnist_small.py:smoke",
                       ["prune.granularity='ou_group'", "prune.filter_order='greedy'"])
  state = _state()
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 2)), jnp.float32)
  plan = (8, "M", 8, "M")
  grouped = pruning.group_filters(config, state)
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  new_kernels = [np.asarray(k) for k in conv_kernels(grouped["params"])]
  libraries = targets.extract_libraries(config, kernels)
  _, groups = targets.granularity(config, kernels)
  assert any(not np.array_equal(a, b) for a, b in zip(kernels, new_kernels))
  for w, new, lib, group in zip(kernels, new_kernels, libraries, groups):
    assert grouped_kept_energy(new, lib, group) >= grouped_kept_energy(w, lib, group)
  np.testing.assert_allclose(_apply(plan, (), grouped["params"], grouped["batch_stats"], x),
                             _apply(plan, (), state["params"], state["batch_stats"], x), rtol=1e-5,
                             atol=1e-5)
  # A deterministic function of the state: a run resumed before ADMM begins reorders alike.
  again = pruning.group_filters(config, state)
  jax.tree_util.tree_map(np.testing.assert_array_equal, again, grouped)
  for overrides in (["prune.granularity='ou_group'"], ["prune.filter_order='greedy'"]):
    other = load_config("configs/fashion_mnist_small.py:smoke", overrides)
    assert pruning.group_filters(other, state) is state


def test_filter_order_is_validated():
  with pytest.raises(ConfigError, match="prune.filter_order"):
    load_config("configs/fashion_mnist_small.py", ["prune.filter_order='best'"])
