"""What pruning adds to the loop: its state, the ADMM penalty and updates, the hard projection.

  admm      the loss plus the ADMM penalty pulling every 3x3 layer towards its pattern library
            (extracted from the weights when ADMM begins, `start_pruning`) and its kernel keep
            ratio; Z/Y projections and dual updates (`admm_step`) every `prune.admm_update_every`
            steps, and at the end of every ADMM epoch;
  finetune  begins with the hard projection to masks (`hard_prune`: every kernel one library
            pattern or removed).

Every function is a deterministic function of (config, state), so a resumed run replays exactly
(docs/MODEL.md section 2). The maths of ADMM is in `rramjax.train.admm`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rramjax import patterns
from rramjax.config import Config
from rramjax.models.vgg import permute_filters
from rramjax.train import admm, targets
from rramjax.train.step import conv_kernels, with_conv_kernels


def init_state(config: Config, kernels) -> dict:
  """The pruning entries of the training state (none when pruning is off), before ADMM starts.

  Their structure is fixed by the config (checkpoints restore into it): libraries `(K_l, 9)`,
  keep ratios, the ADMM variables, rho and the squared weight the hard projection kept.
  """
  if not config.prune.enabled:
    return {}
  n = len(kernels)
  return {"libraries": [jnp.zeros((k, 9), jnp.float32) for k in targets.library_sizes(config, n)],
          "keep_ratios": jnp.ones((n,), jnp.float32),
          "admm": {name: [jnp.zeros_like(w) for w in kernels] for name in admm.AdmmState._fields},
          "rho": jnp.asarray(config.prune.rho, jnp.float32),
          "kept_energy": jnp.ones((n,), jnp.float32)}


def _admm_state(state) -> admm.AdmmState:
  return admm.AdmmState(**state["admm"])


def _ratios(state) -> tuple[float, ...]:
  return tuple(float(r) for r in np.asarray(state["keep_ratios"]))


def penalty(phase: str):
  """The loss term `penalty(params, state)` of a phase: the ADMM penalty in 'admm', else None."""
  if phase != "admm":
    return None
  return lambda params, state: admm.admm_penalty(conv_kernels(params), _admm_state(state), state["rho"])


@functools.partial(jax.jit, static_argnames=("ratios", "unit", "group"))
def _admm_update(kernels, admm_state, libraries, ratios, unit, group):
  return admm.admm_update(kernels, admm_state, libraries, list(ratios), unit, group)


def admm_step(config: Config, state: dict) -> dict:
  """Z/Y projections and dual updates, then rho *= rho_growth (capped at rho_max).

  References:
    Boyd et al., "Distributed Optimization and Statistical Learning via ADMM" (2011),
    section 3.4.1 (varying the penalty parameter).
  """
  p = config.prune
  kernels = conv_kernels(state["params"])
  new = _admm_update(kernels, _admm_state(state), state["libraries"], _ratios(state),
                     *targets.granularity(config, kernels))
  rho = jnp.minimum(state["rho"] * p.rho_growth, p.rho_max)
  # Scaled duals are y / rho: when rho grows they shrink by the same factor (Boyd et al. 3.4.1).
  scale = state["rho"] / rho
  new = new._replace(u=[u * scale for u in new.u], v=[v * scale for v in new.v])
  return {**state, "admm": new._asdict(), "rho": rho}


def step_hook(config: Config, phase: str):
  """`(every, fn)`: the loop calls `state = fn(state)` every `every` steps of an epoch (0: never)."""
  every = config.prune.admm_update_every
  if phase == "admm" and every:
    return every, functools.partial(admm_step, config)
  return 0, None


def group_filters(config: Config, state: dict) -> dict:
  """With `prune.filter_order='greedy'` at 'ou_group' granularity: each layer's filters reordered
  (`rramjax.models.vgg.permute_filters`, the same network) so that its column groups keep more
  squared weight under the group projection (`rramjax.patterns.grouping.group_order`, with the
  library extracted from the given order). Otherwise the state as it is."""
  p = config.prune
  if p.granularity != "ou_group" or p.filter_order != "greedy":
    return state
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  libraries = targets.extract_libraries(config, kernels)
  _, groups = targets.granularity(config, kernels)
  params, stats = state["params"], state["batch_stats"]
  # Seconds for VGG16's 512-filter layers (docs/BENCHMARKS.md): a bar where it is that long and
  # the output is a terminal.
  slow = sum(w.shape[2] * w.shape[3] ** 2 for w in kernels) > 5e7
  layers = tqdm(list(enumerate(zip(kernels, libraries, groups))), desc="grouping filters",
                leave=False, disable=None if slow else True)
  for layer, (w, lib, group) in layers:
    order = patterns.group_order(w, lib, group)
    if np.any(order != np.arange(len(order))):
      params, stats = permute_filters(params, stats, layer, order)
  return {**state, "params": params, "batch_stats": stats}


def start_pruning(config: Config, state: dict) -> dict:
  """Filter groups (`group_filters`), then libraries from the current weights, keep ratios for
  the target, ADMM variables."""
  state = group_filters(config, state)
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  libraries = targets.extract_libraries(config, kernels)
  ratios = targets.keep_ratios(config, kernels,
                               targets.expected_pattern_sizes(config, kernels, libraries))
  mats = [jnp.asarray(targets.library_rows(lib, m.shape[0]))
          for lib, m in zip(libraries, state["libraries"])]
  admm_state = admm.admm_init(conv_kernels(state["params"]), mats, ratios,
                              *targets.granularity(config, kernels))
  return {**state, "libraries": mats, "keep_ratios": jnp.asarray(ratios, jnp.float32),
          "admm": admm_state._asdict(), "rho": jnp.asarray(config.prune.rho, jnp.float32)}


def hard_prune(config: Config, state: dict) -> dict:
  """Projects the weights to masks (one library pattern per kernel, or removed) and applies them."""
  kernels = conv_kernels(state["params"])
  pruned, masks = admm.admm_hard_prune(kernels, state["libraries"], list(_ratios(state)),
                                       *targets.granularity(config, kernels))
  masks = [m.astype(k.dtype) for m, k in zip(masks, kernels)]
  kept = jnp.stack([jnp.sum(jnp.square(p)) / jnp.maximum(jnp.sum(jnp.square(k)), 1e-30)
                    for p, k in zip(pruned, kernels)])
  return {**state, "params": with_conv_kernels(state["params"], pruned), "masks": masks,
          "kept_energy": kept.astype(jnp.float32)}


def begin_finetune(config: Config, state: dict) -> dict:
  """The hard projection; with no ADMM epoch (one-shot pruning) the libraries come first."""
  if config.train.admm_epochs == 0:
    state = start_pruning(config, state)
  return hard_prune(config, state)


def epoch_report(state: dict, phase: str) -> dict:
  """The ADMM residuals and rho at the end of an ADMM epoch (nothing in other phases)."""
  if phase != "admm":
    return {}
  res = admm.admm_residuals(conv_kernels(state["params"]), _admm_state(state))
  return {"admm_pattern_residual": float(res["pattern_relative"]),
          "admm_connectivity_residual": float(res["connectivity_relative"]),
          "rho": float(state["rho"])}
