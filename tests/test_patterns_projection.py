"""Projection onto a pattern library, connectivity pruning and their combination."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rramjax.errors import ConfigError
from rramjax.patterns import (connectivity_mask, num_kept_kernels, pattern_codes,
                              project_to_library, projection_choice, prune_layer)

SETTINGS = settings(max_examples=30, deadline=None)
# A few fixed shapes and library sizes: every new shape costs a jit compilation.
SHAPES = st.sampled_from([(1, 1), (2, 3), (4, 5)])
SIZES = st.sampled_from([1, 4, 8])


def _layer(seed, cin, cout, zero_fraction=0.0):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
  w[..., rng.random((cin, cout)) < zero_fraction] = 0.0
  return w


def _library(seed, size):
  return tuple(int(c) for c in np.random.default_rng(seed).choice(np.arange(1, 512), size, False))


@SETTINGS
@given(st.integers(0, 2**31 - 1), SHAPES, SIZES)
def test_projection_keeps_the_best_pattern_by_brute_force(seed, shape, k):
  cin, cout = shape
  w, lib = _layer(seed, cin, cout, 0.2), _library(seed, k)
  w_proj, mask = map(np.asarray, project_to_library(w, lib))
  choice = np.asarray(projection_choice(w, lib))
  codes = np.asarray(pattern_codes(mask))
  for c, f in itertools.product(range(cin), range(cout)):
    kernel = w[:, :, c, f].reshape(-1)
    if not kernel.any():
      assert choice[c, f] == -1 and not mask[:, :, c, f].any()
      continue
    kept = [np.sum(kernel**2 * ((code >> np.arange(9)) & 1)) for code in lib]
    assert kept[choice[c, f]] >= max(kept) * (1 - 1e-6)
    assert codes[c, f] == lib[choice[c, f]]
    # nonzeros lie inside the chosen pattern, and the kept weights are unchanged
    outside = mask[:, :, c, f] == 0
    assert not w_proj[:, :, c, f][outside].any()
    np.testing.assert_array_equal(w_proj[:, :, c, f][~outside], w[:, :, c, f][~outside])


@SETTINGS
@given(st.integers(0, 2**31 - 1), SHAPES, st.floats(0.01, 1.0))
def test_connectivity_keeps_exact_count_of_largest_kernels(seed, shape, keep_ratio):
  cin, cout = shape
  w = _layer(seed, cin, cout)
  kept = np.asarray(connectivity_mask(w, keep_ratio))
  count = num_kept_kernels(cin * cout, keep_ratio)
  assert kept.sum() == count == max(1, min(cin * cout, int(np.floor(keep_ratio * cin * cout + .5))))
  norms = np.sum(w**2, axis=(0, 1))
  if count < cin * cout:
    assert norms[kept].min() >= norms[~kept].max()


@SETTINGS
@given(st.integers(0, 2**31 - 1), SHAPES, SIZES, st.floats(0.05, 1.0))
def test_pruned_kernels_are_zero_or_exactly_one_library_pattern(seed, shape, k, keep_ratio):
  cin, cout = shape
  w, lib = _layer(seed, cin, cout), _library(seed + 1, k)
  mask = np.asarray(prune_layer(w, lib, keep_ratio))
  assert set(np.unique(mask)) <= {0.0, 1.0}
  codes = np.asarray(pattern_codes(mask))
  assert set(codes[codes > 0].tolist()) <= set(lib)
  assert np.count_nonzero(codes) == num_kept_kernels(cin * cout, keep_ratio)
  # weights are nonzero almost surely, so the pruned weights' pattern is the mask's
  np.testing.assert_array_equal(pattern_codes(w * mask), codes)


def test_projection_accepts_a_library_matrix_and_is_jittable():
  import jax
  w, lib = _layer(0, 3, 4), (16, 27, 511 - 16)
  from rramjax.patterns import library_matrix
  direct = project_to_library(w, lib)[1]
  jitted = jax.jit(lambda w, p: project_to_library(w, p)[1])(w, library_matrix(lib))
  np.testing.assert_array_equal(direct, jitted)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5, float("nan"), True])
def test_bad_keep_ratio_raises(ratio):
  with pytest.raises(ConfigError, match=r"\(0, 1\]"):
    connectivity_mask(_layer(0, 2, 2), ratio)


# OU-group granularity -------------------------------------------------------------------------
GROUP_SHAPES = st.sampled_from([(1, 1), (2, 3), (3, 8), (4, 10)])
GROUP_SIZES = st.sampled_from([1, 2, 4])


def _groups(cout, g):
  return [list(range(first, min(first + g, cout))) for first in range(0, cout, g)]


def _codes_of(mask):
  return np.asarray(pattern_codes(np.asarray(mask)))


@SETTINGS
@given(st.integers(0, 2**31 - 1), GROUP_SHAPES, SIZES, GROUP_SIZES)
def test_group_projection_keeps_the_most_of_each_group(seed, shape, k, g):
  cin, cout = shape
  w, lib = _layer(seed, cin, cout, 0.3), _library(seed, k)
  w_proj, mask = map(np.asarray, project_to_library(w, lib, granularity="ou_group", group_size=g))
  codes = _codes_of(mask)
  for c in range(cin):
    for group in _groups(cout, g):
      energy = np.sum(w[:, :, c, group].reshape(9, -1) ** 2, axis=1)
      if not energy.any():
        assert not codes[c, group].any()
        continue
      kept = [energy @ ((code >> np.arange(9)) & 1) for code in lib]
      chosen = codes[c, group]
      # Every kernel of the group at c shares one library pattern ...
      assert len(set(chosen.tolist())) == 1 and chosen[0] in lib
      # ... the one keeping at least as much of the group's squared weight as any other.
      assert kept[lib.index(int(chosen[0]))] >= max(kept) * (1 - 1e-6)
  np.testing.assert_array_equal(w_proj, w * mask)


@SETTINGS
@given(st.integers(0, 2**31 - 1), GROUP_SHAPES, SIZES, st.floats(0.05, 1.0))
def test_groups_of_one_filter_are_the_kernel_granularity(seed, shape, k, keep_ratio):
  cin, cout = shape
  w, lib = _layer(seed, cin, cout, 0.2), _library(seed + 2, k)
  for kernel, group in zip(project_to_library(w, lib), project_to_library(w, lib, "ou_group", 1)):
    np.testing.assert_array_equal(kernel, group)
  np.testing.assert_array_equal(prune_layer(w, lib, keep_ratio),
                                prune_layer(w, lib, keep_ratio, granularity="ou_group", group_size=1))
  np.testing.assert_array_equal(projection_choice(w, lib), projection_choice(w, lib, "ou_group", 1))


@SETTINGS
@given(st.integers(0, 2**31 - 1), GROUP_SHAPES, SIZES, GROUP_SIZES, st.floats(0.05, 1.0))
def test_group_pruning_shares_patterns_and_drops_channels_together(seed, shape, k, g, keep_ratio):
  cin, cout = shape
  w, lib = _layer(seed, cin, cout), _library(seed + 1, k)
  mask = np.asarray(prune_layer(w, lib, keep_ratio, granularity="ou_group", group_size=g))
  codes = _codes_of(mask)
  groups = _groups(cout, g)
  kept_units = 0
  for c in range(cin):
    for group in groups:
      assert len(set(codes[c, group].tolist())) == 1  # one pattern for the group, or all removed
      kept_units += bool(codes[c, group[0]])
  assert set(codes[codes > 0].tolist()) <= set(lib)
  assert kept_units == num_kept_kernels(cin * len(groups), keep_ratio)
  # Connectivity alone keeps the largest (channel, group) units by L2 norm.
  alive = np.asarray(connectivity_mask(w, keep_ratio, granularity="ou_group", group_size=g))
  norms = np.array([[np.sum(w[:, :, c, group] ** 2) for group in groups] for c in range(cin)])
  units = np.array([[alive[c, group[0]] for group in groups] for c in range(cin)])
  if units.sum() < units.size:
    assert norms[units].min() >= norms[~units].max()


def test_bad_granularity_raises():
  with pytest.raises(ConfigError, match="granularity"):
    project_to_library(_layer(0, 2, 2), (16,), granularity="filter")
  with pytest.raises(ConfigError, match="group_size"):
    prune_layer(_layer(0, 2, 2), (16,), 0.5, granularity="ou_group", group_size=0)


def test_docstring_examples():
  import doctest  # pylint: disable=g-import-not-at-top
  from rramjax.patterns import projection  # pylint: disable=g-import-not-at-top
  results = doctest.testmod(projection)
  assert results.attempted > 0 and results.failed == 0
