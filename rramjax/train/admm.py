"""ADMM for pattern and connectivity pruning: pure functions over lists of HWIO conv kernels.

PatDNN's problem: minimise the loss f(W) subject to W_l in S_l (every kernel of layer l is one
library pattern) and W_l in S'_l (at most `keep_l` nonzero kernels). ADMM splits it with auxiliary
variables Z (patterns) and Y (connectivity) and scaled duals U, V:

  W-step: minimise f(W) + rho/2 sum_l ||W_l - Z_l + U_l||^2 + rho/2 sum_l ||W_l - Y_l + V_l||^2
          (SGD on the loss plus `admm_penalty`; the training loop owns this step);
  Z-step: Z_l = Proj_S(W_l + U_l),  Y-step: Y_l = Proj_S'(W_l + V_l)   (`admm_update`);
  duals:  U_l += W_l - Z_l,         V_l += W_l - Y_l.

At OU-group granularity (`granularity="ou_group"`, docs/MODEL.md section 8) S_l holds
the weights whose kernels of one column group of `group_size` filters share each input channel's
pattern, and S'_l at most `keep_l` nonzero (channel, group) units: the Z and Y steps project onto
those (`project_to_library` and `project_connectivity` at group granularity).

The libraries are extracted once, from the pretrained weights, and stay fixed through ADMM and the
masked fine-tuning that follows (`admm_hard_prune` gives the final masks). Keep counts are static
Python ints computed from the (static) kernel shapes, so `admm_update` jits with the libraries passed
as `(K, 9)` arrays (see `library_matrices`) and the keep ratios closed over.

References:
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (ADMM with pattern and connectivity sets).
  Zhang et al., "A Systematic DNN Weight Pruning Framework using ADMM", ECCV 2018.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.patterns import (as_library_matrix, check_conv_kernel, check_granularity,
                              num_kept_kernels, num_units, prune_layer, project_connectivity,
                              project_to_library)
from rramjax.plan import DEFAULT_GROUP_SIZE


class AdmmState(NamedTuple):
  """ADMM variables, one HWIO array per conv layer (a pytree).

  Attributes:
    z: pattern-constrained copies Z_l.
    y: connectivity-constrained copies Y_l.
    u: scaled duals U_l of W = Z.
    v: scaled duals V_l of W = Y.
  """

  z: list
  y: list
  u: list
  v: list


def _groups(group_size, n: int) -> list[int]:
  """Per-layer group sizes: one int for every layer, or a sequence of one per layer."""
  if isinstance(group_size, (list, tuple)):
    if len(group_size) != n:
      raise ConfigError(f"ADMM needs one group size per conv layer: got {len(group_size)} for {n} layers.")
    return list(group_size)
  return [group_size] * n


def _check_layers(kernels, libraries, keep_ratios, granularity="kernel",
                  group_size=DEFAULT_GROUP_SIZE) -> tuple[list[int], list[int]]:
  """Validates the per-layer arguments; returns each layer's static keep count (units) and group size."""
  if not len(kernels) == len(libraries) == len(keep_ratios):
    raise ConfigError(f"ADMM needs one library and one keep ratio per conv layer: got "
                      f"{len(kernels)} kernels, {len(libraries)} libraries, "
                      f"{len(keep_ratios)} keep ratios.")
  for layer, w in enumerate(kernels):
    check_conv_kernel(w, f"kernels[{layer}]")
  groups = _groups(group_size, len(kernels))
  for g in groups:
    check_granularity(granularity, g)
  keeps = [num_kept_kernels(num_units(w.shape, granularity, g), r)
           for w, r, g in zip(kernels, keep_ratios, groups)]
  return keeps, groups


def library_matrices(libraries) -> list:
  """Libraries as validated `(K_l, 9)` float32 jax arrays: pass these into jitted ADMM steps."""
  return [as_library_matrix(library) for library in libraries]


def _project(w_plus_u, w_plus_v, library, keep, granularity, group_size):
  unit = 1 if granularity == "kernel" else group_size
  return (project_to_library(w_plus_u, library, granularity, group_size)[0],
          project_connectivity(w_plus_v, keep, unit))


def admm_init(kernels: Sequence, libraries: Sequence, keep_ratios: Sequence[float],
              granularity: str = "kernel", group_size: int = DEFAULT_GROUP_SIZE) -> AdmmState:
  """Starts ADMM from (pretrained) weights: Z, Y the projections of W; U = V = 0.

  Args:
    kernels: HWIO conv kernels `(3, 3, Cin_l, Cout_l)`, network order.
    libraries: per layer, pattern codes or a `(K, 9)` matrix (fixed from here on).
    keep_ratios: per layer, fraction of kernels (or OU-group units) kept, in (0, 1].
    granularity: 'kernel' or 'ou_group' (see the module doc).
    group_size: filters per OU column group for 'ou_group' (static): one int, or one per layer.

  Returns:
    `AdmmState` of jnp arrays.
  """
  keeps, groups = _check_layers(kernels, libraries, keep_ratios, granularity, group_size)
  kernels = [jnp.asarray(w) for w in kernels]
  z, y = zip(*[_project(w, w, lib, k, granularity, g)
               for w, lib, k, g in zip(kernels, libraries, keeps, groups)])
  # U and V get arrays of their own: the train step donates the state, and XLA refuses one
  # buffer donated twice.
  return AdmmState(list(z), list(y), [jnp.zeros_like(w) for w in kernels],
                   [jnp.zeros_like(w) for w in kernels])


def admm_penalty(kernels: Sequence, state: AdmmState, rho):
  """The augmented-Lagrangian term added to the loss in the W-step.

  Returns:
    Scalar rho/2 sum_l ||W_l - Z_l + U_l||^2 + rho/2 sum_l ||W_l - Y_l + V_l||^2 (differentiable
    in W; Z, Y, U, V are constants of the step).
  """
  total = 0.0
  for w, z, y, u, v in zip(kernels, *state):
    total = total + jnp.sum(jnp.square(w - z + u)) + jnp.sum(jnp.square(w - y + v))
  return 0.5 * rho * total


def admm_update(kernels: Sequence, state: AdmmState, libraries: Sequence,
                keep_ratios: Sequence[float], granularity: str = "kernel",
                group_size: int = DEFAULT_GROUP_SIZE) -> AdmmState:
  """One Z/Y projection and dual update (call every few epochs, after the W-steps).

  Z_l = Proj_pattern(W_l + U_l), U_l += W_l - Z_l; Y_l = Proj_connectivity(W_l + V_l),
  V_l += W_l - Y_l.

  Args:
    kernels: current HWIO conv kernels.
    state: the previous `AdmmState`.
    libraries: per layer, codes or `(K, 9)` arrays (arrays may be traced).
    keep_ratios: per layer, Python floats in (0, 1] (static under jit).
    granularity, group_size: as in `admm_init` (static under jit).

  Returns:
    The new `AdmmState`.
  """
  keeps, groups = _check_layers(kernels, libraries, keep_ratios, granularity, group_size)
  z, y, u, v = [], [], [], []
  for w, u_l, v_l, lib, keep, g in zip(kernels, state.u, state.v, libraries, keeps, groups):
    z_l, y_l = _project(w + u_l, w + v_l, lib, keep, granularity, g)
    z.append(z_l), y.append(y_l), u.append(u_l + w - z_l), v.append(v_l + w - y_l)
  return AdmmState(z, y, u, v)


def rho_schedule(step_or_epoch, rho0: float, growth: float = 1.0, every: int = 1,
                 rho_max: float = float("inf")):
  """Penalty weight rho = min(rho0 * growth^floor(step / every), rho_max).

  PatDNN raises rho step by step so that W is pulled onto the constraint sets gradually.

  Args:
    step_or_epoch: int (or traced int) counter.
    rho0: initial rho > 0.
    growth: factor >= 1 applied every `every` counts.
    every: period >= 1 of the growth.
    rho_max: cap, >= rho0.

  Returns:
    float32 scalar.
  """
  if not np.isfinite(rho0) or rho0 <= 0:
    raise ConfigError(f"rho0 must be a finite number > 0, got {rho0!r}.")
  if not np.isfinite(growth) or growth < 1:
    raise ConfigError(f"rho growth must be a finite number >= 1, got {growth!r}.")
  if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
    raise ConfigError(f"rho 'every' must be an integer >= 1, got {every!r}.")
  if not rho_max >= rho0:
    raise ConfigError(f"rho_max ({rho_max!r}) must be >= rho0 ({rho0!r}).")
  exponent = jnp.floor_divide(jnp.asarray(step_or_epoch), every).astype(jnp.float32)
  return jnp.minimum(rho0 * jnp.power(jnp.float32(growth), exponent), rho_max).astype(jnp.float32)


def admm_residuals(kernels: Sequence, state: AdmmState) -> dict:
  """Primal residuals, to report convergence (they go to 0 as W meets both constraint sets).

  Returns:
    dict of jnp arrays: 'pattern' and 'connectivity', `(L,)` per-layer norms ||W_l - Z_l|| and
    ||W_l - Y_l||; 'pattern_total', 'connectivity_total', the norms over all layers; and
    'pattern_relative', 'connectivity_relative', those totals divided by ||W||.
  """
  pattern = jnp.stack([jnp.linalg.norm((w - z).reshape(-1)) for w, z in zip(kernels, state.z)])
  connect = jnp.stack([jnp.linalg.norm((w - y).reshape(-1)) for w, y in zip(kernels, state.y)])
  norm_w = jnp.sqrt(sum(jnp.sum(jnp.square(w)) for w in kernels))
  totals = {"pattern_total": jnp.linalg.norm(pattern), "connectivity_total": jnp.linalg.norm(connect)}
  relative = {name.replace("total", "relative"): value / jnp.maximum(norm_w, 1e-30)
              for name, value in totals.items()}
  return {"pattern": pattern, "connectivity": connect, **totals, **relative}


def admm_hard_prune(kernels: Sequence, libraries: Sequence, keep_ratios: Sequence[float],
                    granularity: str = "kernel",
                    group_size: int = DEFAULT_GROUP_SIZE) -> tuple[list, list]:
  """Ends ADMM: final masks by `prune_layer` and the masked kernels, for masked fine-tuning.

  Returns:
    `(pruned_kernels, masks)`, lists of HWIO arrays; every kernel is all zero or one library
    pattern (with 'ou_group', shared by its group at that input channel).
  """
  _, groups = _check_layers(kernels, libraries, keep_ratios, granularity, group_size)
  masks = [prune_layer(w, lib, r, granularity, g)
           for w, lib, r, g in zip(kernels, libraries, keep_ratios, groups)]
  return [w * m for w, m in zip(kernels, masks)], masks


__all__ = ["AdmmState", "admm_init", "admm_penalty", "admm_update", "rho_schedule",
           "admm_residuals", "admm_hard_prune", "library_matrices"]
