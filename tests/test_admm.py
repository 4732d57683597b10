"""ADMM pieces for pattern + connectivity pruning (rramjax.train.admm)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rramjax.errors import ConfigError
from rramjax.patterns import (num_kept_kernels, pattern_codes, prune_layer)
from rramjax.train.admm import (AdmmState, admm_hard_prune, admm_init, admm_penalty, admm_residuals,
                                admm_update, library_matrices, rho_schedule)

SHAPES = [(3, 3, 3, 8), (3, 3, 8, 16)]
LIBRARIES = [(16 | 2 | 8, 16 | 1 | 2 | 4, 16 | 32 | 128 | 256), (16 | 2 | 32, 511, 1 | 4 | 64 | 256)]
KEEP = [1.0, 0.5]


def _kernels(seed):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.normal(size=s), jnp.float32) for s in SHAPES]


def test_penalty_is_zero_when_w_meets_both_constraints():
  kernels, _ = admm_hard_prune(_kernels(0), LIBRARIES, KEEP)
  state = admm_init(kernels, LIBRARIES, KEEP)
  chex.assert_trees_all_close(state.z, kernels)
  chex.assert_trees_all_close(state.y, kernels)
  assert float(admm_penalty(kernels, state, 10.0)) == 0.0
  explicit = AdmmState(kernels, kernels, [0 * w for w in kernels], [0 * w for w in kernels])
  assert float(admm_penalty(kernels, explicit, 10.0)) == 0.0


def test_penalty_matches_its_formula():
  kernels = _kernels(1)
  state = admm_update(kernels, admm_init(kernels, LIBRARIES, KEEP), LIBRARIES, KEEP)
  moved = [0.9 * w for w in kernels]
  expected = sum(0.5 * 2.0 * (float(jnp.sum((w - z + u) ** 2)) + float(jnp.sum((w - y + v) ** 2)))
                 for w, z, y, u, v in zip(moved, *state))
  assert float(admm_penalty(moved, state, 2.0)) == pytest.approx(expected, rel=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_update_projects_z_onto_patterns_and_y_onto_connectivity(seed):
  kernels = _kernels(seed)
  state = admm_init(kernels, LIBRARIES, KEEP)
  drifted = [w + 0.3 * jnp.asarray(np.random.default_rng(seed + 1).normal(size=w.shape), w.dtype)
             for w in kernels]
  new = admm_update(drifted, state, LIBRARIES, KEEP)
  for w, z, y, u, v, u_old, v_old, lib, keep in zip(drifted, *new, state.u, state.v, LIBRARIES,
                                                    KEEP):
    codes = np.asarray(pattern_codes(z))
    assert set(codes.reshape(-1).tolist()) <= set(lib) | {0}
    kernel_alive = np.asarray(jnp.any(y != 0, axis=(0, 1)))
    assert kernel_alive.sum() == num_kept_kernels(w.shape[2] * w.shape[3], keep)
    chex.assert_trees_all_close(u, u_old + w - z, atol=1e-6)
    chex.assert_trees_all_close(v, v_old + w - y, atol=1e-6)


def test_update_jits_with_library_matrices_and_matches_eager():
  kernels = _kernels(2)
  state = admm_init(kernels, LIBRARIES, KEEP)
  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(kernels, state, libraries):
    return admm_update(kernels, state, libraries, KEEP)

  mats = library_matrices(LIBRARIES)
  jitted = step(kernels, state, mats)
  step([w * 1.01 for w in kernels], jitted, mats)  # no retrace
  chex.assert_trees_all_close(jitted, admm_update(kernels, state, LIBRARIES, KEEP), atol=1e-6)


def test_residuals_shrink_as_w_moves_toward_z_and_y():
  kernels = _kernels(3)
  state = admm_init(kernels, LIBRARIES, KEEP)
  before = admm_residuals(kernels, state)
  halfway = [w + 0.5 * (z - w) for w, z in zip(kernels, state.z)]
  after = admm_residuals(halfway, state)
  np.testing.assert_allclose(after["pattern"], 0.5 * before["pattern"], rtol=1e-5)
  assert float(after["pattern_total"]) < float(before["pattern_total"])
  at_y = admm_residuals(state.y, state)
  assert float(at_y["connectivity_total"]) == 0.0 < float(before["connectivity_total"])
  assert 0.0 < float(before["pattern_relative"]) < 1.0


def test_hard_prune_gives_masks_of_prune_layer():
  kernels = _kernels(4)
  pruned, masks = admm_hard_prune(kernels, LIBRARIES, KEEP)
  for w, p, m, lib, keep in zip(kernels, pruned, masks, LIBRARIES, KEEP):
    np.testing.assert_array_equal(m, prune_layer(w, lib, keep))
    np.testing.assert_array_equal(p, w * m)


def test_rho_schedule():
  assert float(rho_schedule(0, 1e-3, 2.0, 3)) == pytest.approx(1e-3)
  assert float(rho_schedule(7, 1e-3, 2.0, 3)) == pytest.approx(4e-3)
  assert float(rho_schedule(100, 1e-3, 2.0, 3, rho_max=0.1)) == pytest.approx(0.1)
  traced = jax.jit(lambda s: rho_schedule(s, 1e-3, 2.0, 3))(jnp.int32(7))
  assert float(traced) == pytest.approx(4e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rho0=0.0), "rho0"), (dict(rho0=1e-3, growth=0.5), "growth"),
    (dict(rho0=1e-3, every=0), "every"), (dict(rho0=1.0, rho_max=0.5), "rho_max"),
])
def test_bad_rho_schedule_raises(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    rho_schedule(0, **kwargs)


def test_mismatched_layers_raise():
  with pytest.raises(ConfigError, match="one library and one keep ratio per conv layer"):
    admm_init(_kernels(0), LIBRARIES[:1], KEEP)
  with pytest.raises(ConfigError, match=r"\(0, 1\]"):
    admm_init(_kernels(0), LIBRARIES, [1.0, 0.0])


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_group_admm_projects_onto_shared_patterns_and_group_connectivity(seed):
  g = 4
  kernels = _kernels(seed)
  state = admm_init(kernels, LIBRARIES, KEEP, granularity="ou_group", group_size=g)
  new = admm_update([w * 1.1 for w in kernels], state, LIBRARIES, KEEP, granularity="ou_group", group_size=g)
  pruned, masks = admm_hard_prune(kernels, LIBRARIES, KEEP, granularity="ou_group", group_size=g)
  for w, z, y, mask, lib, keep in zip(kernels, new.z, new.y, masks, LIBRARIES, KEEP):
    cin, cout = w.shape[2:]
    for array in (z, mask):  # Z and the final masks: a group's kernels at a channel share a pattern
      codes = np.asarray(pattern_codes(array)).reshape(cin, cout // g, g)
      assert np.all(codes == codes[..., :1]) and set(codes.reshape(-1).tolist()) <= set(lib) | {0}
    alive = np.asarray(jnp.any(y != 0, axis=(0, 1))).reshape(cin, cout // g, g)
    assert np.all(alive == alive[..., :1])  # Y drops an input channel for a whole group
    assert alive[..., 0].sum() == num_kept_kernels(cin * cout // g, keep)
  np.testing.assert_array_equal(masks[1], prune_layer(kernels[1], LIBRARIES[1], KEEP[1], "ou_group", g))


def test_group_admm_update_jits():
  kernels = _kernels(5)
  state = admm_init(kernels, LIBRARIES, KEEP, "ou_group", 4)
  step = jax.jit(lambda k, s, libs: admm_update(k, s, libs, KEEP, "ou_group", 4))
  chex.assert_trees_all_close(step(kernels, state, library_matrices(LIBRARIES)),
                              admm_update(kernels, state, LIBRARIES, KEEP, "ou_group", 4), atol=1e-6)


def test_per_layer_group_sizes_equal_each_layer_alone():
  """`group_size` as one int per layer (prune.ou_group_layers='multi_ou'): each layer is what a call
  with that layer's group size gives it; a group of 1 filter is the kernel granularity."""
  kernels = _kernels(11)
  mixed = admm_init(kernels, LIBRARIES, KEEP, "ou_group", (1, 4))
  kernel = admm_init(kernels, LIBRARIES, KEEP, "kernel")
  grouped = admm_init(kernels, LIBRARIES, KEEP, "ou_group", 4)
  for field in AdmmState._fields:
    chex.assert_trees_all_close(getattr(mixed, field)[0], getattr(kernel, field)[0])
    chex.assert_trees_all_close(getattr(mixed, field)[1], getattr(grouped, field)[1])
  new = admm_update([w * 1.1 for w in kernels], mixed, LIBRARIES, KEEP, "ou_group", (1, 4))
  chex.assert_trees_all_close(new.z[1], admm_update([w * 1.1 for w in kernels], grouped, LIBRARIES, KEEP,
                                                    "ou_group", 4).z[1])
  _, masks = admm_hard_prune(kernels, LIBRARIES, KEEP, "ou_group", (1, 4))
  np.testing.assert_array_equal(masks[0], prune_layer(kernels[0], LIBRARIES[0], KEEP[0]))
  np.testing.assert_array_equal(masks[1], prune_layer(kernels[1], LIBRARIES[1], KEEP[1], "ou_group", 4))
  with pytest.raises(ConfigError, match="one group size per conv layer"):
    admm_init(kernels, LIBRARIES, KEEP, "ou_group", (4,))
