"""Library extraction: PatDNN counting and the greedy kept-weight maximiser."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rramjax.errors import ConfigError
from rramjax.patterns import (extract_library_greedy, extract_library_patdnn, library_objective,
                              pattern_size, surviving_energy, validate_library)

SETTINGS = settings(max_examples=30, deadline=None)
SHAPES = st.sampled_from([(2, 3), (4, 8), (8, 16)])


def _layer(seed, cin, cout):
  return np.random.default_rng(seed).normal(size=(3, 3, cin, cout))


def _kernel_with_top(positions, rng):
  """A 3x3 kernel whose largest-magnitude positions are exactly `positions`."""
  kernel = rng.uniform(0.0, 0.1, 9) * rng.choice([-1, 1], 9)
  kernel[list(positions)] = rng.uniform(1.0, 2.0, len(positions))
  return kernel.reshape(3, 3)


def test_patdnn_keeps_the_most_frequent_top_k_masks():
  rng = np.random.default_rng(0)
  votes = [(0, 1)] * 5 + [(4, 8)] * 3 + [(2, 6)] * 1
  w = np.stack([_kernel_with_top(p, rng) for p in votes], axis=-1)[:, :, None, :]
  assert extract_library_patdnn(w, 2, k=2) == (0b11, (1 << 4) | (1 << 8))
  assert len(extract_library_patdnn(w, 10, k=2)) == 3  # only 3 distinct masks occur


@SETTINGS
@given(st.integers(0, 2**31 - 1), SHAPES, st.sampled_from([2, 4, 8]), st.sampled_from([2, 4]))
def test_greedy_keeps_at_least_patdnn_weight(seed, shape, count, k):
  w = _layer(seed, *shape)
  energy = surviving_energy(w)
  greedy = extract_library_greedy(w, count, sizes=k)
  patdnn = extract_library_patdnn(w, count, k=k)
  validate_library(greedy)
  assert len(greedy) <= count and set(pattern_size(greedy).tolist()) == {k}
  assert library_objective(energy, greedy) >= library_objective(energy, patdnn) * (1 - 1e-12)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([4, 8]))
def test_greedy_mixed_sizes_never_below_patdnn_on_its_penalised_objective(seed, count):
  """The search starts from PatDNN's libraries: never worse (the strict case is constructed below)."""
  w = _layer(seed, 4, 8)
  energy = surviving_energy(w)
  greedy = extract_library_greedy(w, count, sizes=(2, 3, 4), size_penalty=1.0)
  best_patdnn = max(library_objective(energy, extract_library_patdnn(w, count, k), 1.0)
                    for k in (2, 3, 4))
  assert library_objective(energy, greedy, 1.0) >= best_patdnn * (1 - 1e-12)
  assert set(pattern_size(greedy).tolist()) <= {2, 3, 4}


def _code(*positions):
  return sum(1 << i for i in positions)


def _groups(*groups):
  """A layer (Cin = 1) of kernel groups `(count, positions, weight)`: that weight on those positions."""
  rows = np.concatenate([np.zeros((count, 9)) for count, _, _ in groups])
  start = 0
  for count, positions, weight in groups:
    rows[start:start + count, positions] = weight
    start += count
  return np.transpose(rows.reshape(1, len(rows), 3, 3), (2, 3, 0, 1))  # HWIO


def test_greedy_keeps_strictly_more_weight_where_counting_misleads():
  """3 heavy kernels (squared weight 100 on positions 0, 1), 5 light ones (1 on 7, 8): counting
  votes for the light mask, the kept weight is in the heavy one."""
  w = _groups((3, [0, 1], 10.0), (5, [7, 8], 1.0))
  energy = surviving_energy(w)
  patdnn, greedy = extract_library_patdnn(w, 1, k=2), extract_library_greedy(w, 1, sizes=2)
  assert patdnn == (_code(7, 8),) and greedy == (_code(0, 1),)
  assert library_objective(energy, greedy) == pytest.approx(600.0)  # 3 kernels x 200
  assert library_objective(energy, patdnn) == pytest.approx(10.0)    # 5 kernels x 2


def test_greedy_addition_alone_charges_the_size_penalty():
  """Without the swap search the greedy start decides: its first pick must weigh size too.

  lambda = 610 / 72: one pattern {0, 1} gives F = 600 - 16 lambda, {0, 1, 7, 8} (PatDNN's best)
  610 - 32 lambda.
  """
  w = _groups((3, [0, 1], 10.0), (5, [7, 8], 1.0))
  assert extract_library_greedy(w, 1, sizes=(2, 3, 4), size_penalty=1.0, swap_passes=0) == \
      (_code(0, 1),)


def test_greedy_mixed_sizes_beats_patdnn_on_its_penalised_objective():
  """Strictly, where the size penalty decides the library.

  Groups: 3 kernels with squared weight 100 on positions {0, 1}, 3 with 64 on {3, 4, 5}, 6 with
  1 on {7, 8}; lambda = the mean squared weight per position = 1188 / 108 = 11. The optimum of
  two patterns is {0, 1} and {3, 4, 5}: F = 3 (200 - 2 lambda) + 3 (192 - 3 lambda) + 6 (0 - 2
  lambda) = 879 (the light kernels fall back to the first pattern). A search that rewarded size
  instead (the penalty's sign flipped) takes {0, 1, 7, 8} for the first pattern.
  """
  w = _groups((3, [0, 1], 10.0), (3, [3, 4, 5], 8.0), (6, [7, 8], 1.0))
  energy = surviving_energy(w)
  assert energy.mean() == pytest.approx(11.0)
  greedy = extract_library_greedy(w, 2, sizes=(2, 3, 4), size_penalty=1.0)
  assert greedy == (_code(0, 1), _code(3, 4, 5))
  assert library_objective(energy, greedy, 1.0) == pytest.approx(879.0)
  best_patdnn = max(library_objective(energy, extract_library_patdnn(w, 2, k), 1.0)
                    for k in (2, 3, 4))
  assert best_patdnn == pytest.approx(348.0)  # k = 2: {7, 8} (6 votes) and {0, 1}
  assert library_objective(energy, greedy, 1.0) > best_patdnn


def test_greedy_beats_patdnn_on_average():
  """Not just a tie: on random layers the greedy library keeps clearly more squared weight."""
  ratios = []
  for seed in range(5):
    w = _layer(seed, 16, 16)
    energy = surviving_energy(w)
    ratios.append(library_objective(energy, extract_library_greedy(w, 4, sizes=4)) /
                  library_objective(energy, extract_library_patdnn(w, 4, k=4)))
  assert np.mean(ratios) > 1.01


def test_kernel_mask_limits_extraction_to_surviving_kernels():
  w = _layer(1, 4, 4)
  kernel_mask = np.ones((4, 4), bool)
  kernel_mask[0] = False
  w_survivors = w.copy()
  w_survivors[:, :, 0] = 0.0
  for extract in (extract_library_patdnn, extract_library_greedy):
    assert extract(w, 3, kernel_mask=kernel_mask) == extract(w_survivors, 3)


def test_mixed_size_penalty_shrinks_patterns():
  w = _layer(2, 8, 8)
  mean_size = [pattern_size(extract_library_greedy(w, 6, size_penalty=p)).mean()
               for p in (0.2, 1.0, 3.0)]
  assert mean_size[0] > mean_size[1] > mean_size[2]  # measured: 7.7, 3.0, 1.0 positions


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_patterns=0), "1..511"), (dict(num_patterns=512), "1..511"),
    (dict(num_patterns=2.0), "integer"), (dict(num_patterns=2, sizes=10), "sizes"),
    (dict(num_patterns=2, sizes=()), "sizes"), (dict(num_patterns=2, size_penalty=-1.0), "penalty"),
])
def test_bad_greedy_arguments_raise(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    extract_library_greedy(_layer(0, 2, 2), **kwargs)


def test_no_surviving_kernel_raises():
  with pytest.raises(ConfigError, match="No surviving kernel"):
    extract_library_patdnn(np.zeros((3, 3, 2, 2)), 2)
  with pytest.raises(ConfigError, match="kernel_mask"):
    extract_library_patdnn(_layer(0, 2, 2), 2, kernel_mask=np.ones((3, 3)))


@SETTINGS
@given(st.integers(0, 2**31 - 1), SHAPES, st.sampled_from([2, 4]))
def test_group_energies_are_what_the_group_projection_keeps(seed, shape, g):
  """The library objective at OU-group granularity is the squared weight the group projection keeps."""
  from rramjax.patterns import project_to_library  # pylint: disable=g-import-not-at-top
  cin, cout = shape
  w = _layer(seed, cin, cout)
  w[..., 0, :] = 0.0  # channel 0 pruned everywhere: its groups do not survive
  energy = surviving_energy(w, granularity="ou_group", group_size=g)
  assert energy.shape == ((cin - 1) * -(-cout // g), 9)
  np.testing.assert_allclose(energy.sum(), np.sum(w ** 2))
  library = extract_library_greedy(w, 3, sizes=4, granularity="ou_group", group_size=g)
  projected, _ = project_to_library(w.astype(np.float32), library, granularity="ou_group", group_size=g)
  assert library_objective(energy, library) == pytest.approx(float(np.sum(np.square(projected))), rel=1e-5)
  patdnn = extract_library_patdnn(w, 3, k=4, granularity="ou_group", group_size=g)
  assert library_objective(energy, library) >= library_objective(energy, patdnn) * (1 - 1e-9)


def test_group_votes_count_groups_not_kernels():
  rng = np.random.default_rng(1)
  # Filters 0-3 (one group of 4) vote for positions (0, 1); filters 4, 5 (a second group) for (4, 8):
  # per kernel (0, 1) wins 4 to 2, per group it is 1 to 1 and the lower code wins the tie.
  votes = [(0, 1)] * 4 + [(4, 8)] * 2
  w = np.stack([_kernel_with_top(p, rng) for p in votes], axis=-1)[:, :, None, :]
  assert extract_library_patdnn(w, 1, k=2) == (0b11,)
  assert len(surviving_energy(w, granularity="ou_group", group_size=4)) == 2
  assert set(extract_library_patdnn(w, 2, k=2, granularity="ou_group", group_size=4)) == {0b11, (1 << 4) | (1 << 8)}
