"""The pure, jitted train and eval steps.

The hardware never lives in the model: masks multiply the conv kernels of the parameter pytree
inside the step, and the crossbar model enters as the `conv_fn` the model calls for each 3x3
layer. A `ConvBuilder(masks, hw_state, key) -> conv_fn(x, kernel, layer)` picks the fidelity.

Random streams (docs/MODEL.md section 9): the state's `key` is the run key
`jax.random.key(config.seed)`, never changed. The train step draws its device noise from
`fold_in(run_key, step)`; evaluations use `stream_key(state, tag)` = `fold_in(run_key, tag)` with
a tag above every step number (steps are int32, so below 2^31), hence no evaluation key equals a
training key:
  EPOCH_EVAL_KEY     2^31      the evaluation after every epoch (`Trainer.evaluate`);
  HARDWARE_EVAL_KEY  2^31 + 1  the final hardware evaluation, split into `eval_seeds` keys;
  BN_RECAL_KEY       2^31 + 2  batch-norm re-estimation (the report's, a sweep's; one key per batch).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

ConvBuilder = Callable[[list, Any, jax.Array], Callable]
Penalty = Callable[[Any, dict], jax.Array]

EPOCH_EVAL_KEY = 2**31
HARDWARE_EVAL_KEY = 2**31 + 1
BN_RECAL_KEY = 2**31 + 2


def stream_key(state: dict, tag: int) -> jax.Array:
  """The key of one random stream of a run: `fold_in(run_key, tag)` (tags in the module doc)."""
  return jax.random.fold_in(jax.random.wrap_key_data(state["key"]), tag)


def conv_kernels(params: dict) -> list[jax.Array]:
  """The 3x3 conv kernels (HWIO) of a VGG parameter dict, in network order."""
  convs = params["convs"]
  return [convs[i]["kernel"] for i in sorted(convs)]


def with_conv_kernels(params: dict, kernels: list[jax.Array]) -> dict:
  """A copy of `params` with its conv kernels replaced."""
  convs = {i: {**params["convs"][i], "kernel": k} for i, k in zip(sorted(params["convs"]), kernels)}
  return {**params, "convs": convs}


def apply_masks(params: dict, masks: list[jax.Array]) -> dict:
  return with_conv_kernels(params, [k * m for k, m in zip(conv_kernels(params), masks)])


def mask_tree(params: dict, masks: list[jax.Array]) -> dict:
  """A pytree shaped like `params`: the conv masks at the kernels, ones elsewhere."""
  ones = jax.tree_util.tree_map(jnp.ones_like, params)
  return with_conv_kernels(ones, masks)


def cross_entropy(logits, labels, smoothing: float = 0.0):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing) \
      if smoothing else jax.nn.one_hot(labels, logits.shape[-1])
  return optax.softmax_cross_entropy(logits, targets).mean()


def make_train_step(graphdef, tx: optax.GradientTransformation, conv_builder: ConvBuilder, *,
                    penalty: Penalty | None = None, label_smoothing: float = 0.0,
                    trainable_hw: str | None = None):
  """Builds `train_step(state, images, labels) -> (state, metrics)`, jitted once, state donated.

  The state's buffers are donated to the new state: after a call the state passed in is deleted,
  so callers keep only the returned one (`state, metrics = train_step(state, ...)`) and a state
  must not hold the same array twice.

  Masked weights stay exactly zero: the loss sees `W * mask`, gradients are masked before the
  optimizer (so its moments at pruned positions stay zero) and the new weights are masked again.

  Args:
    graphdef: the model's graph definition in training mode (batch norm uses batch statistics).
    tx: the optimizer.
    conv_builder: makes each step's conv function from (masks, hw_state, key).
    penalty: an extra loss term `penalty(params, state)` (ADMM).
    label_smoothing: cross-entropy label smoothing.
    trainable_hw: a key of `state['hw_state']` trained beside the weights (learned ADC full scale).
  """

  def loss_fn(trainable, state, images, labels, key):
    params, hw_state = trainable["params"], state["hw_state"]
    if trainable_hw:
      hw_state = {**hw_state, trainable_hw: trainable["hw"]}
    masked = apply_masks(params, state["masks"])
    model = nnx.merge(graphdef, masked, state["batch_stats"])
    logits = model(images, conv_builder(state["masks"], hw_state, key))
    loss = cross_entropy(logits, labels, label_smoothing)
    total = loss + (penalty(params, state) if penalty is not None else 0.0)
    batch_stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    return total, (loss, logits, batch_stats)

  @functools.partial(jax.jit, donate_argnums=0)
  def train_step(state, images, labels):
    key = jax.random.fold_in(jax.random.wrap_key_data(state["key"]), state["step"])
    trainable = {"params": state["params"]}
    if trainable_hw:
      trainable["hw"] = state["hw_state"][trainable_hw]
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (total, (loss, logits, batch_stats)), grads = grad_fn(trainable, state, images, labels, key)
    grads["params"] = apply_masks(grads["params"], state["masks"])
    updates, opt_state = tx.update(grads, state["opt_state"], trainable)
    trainable = optax.apply_updates(trainable, updates)
    new = {**state, "params": apply_masks(trainable["params"], state["masks"]),
           "batch_stats": batch_stats, "opt_state": opt_state, "step": state["step"] + 1}
    if trainable_hw:
      new["hw_state"] = {**state["hw_state"], trainable_hw: trainable["hw"]}
    metrics = {"loss": loss, "total_loss": total,
               "correct": jnp.sum(jnp.argmax(logits, -1) == labels)}
    return new, metrics

  return train_step


def make_eval_step(graphdef, conv_builder: ConvBuilder):
  """Builds `eval_step(state, images, labels, valid, key) -> (correct, loss_sum)`, jitted once.

  `valid` masks the padding of the last batch so every batch has one shape.
  """

  def eval_step(state, images, labels, valid, key):
    masked = apply_masks(state["params"], state["masks"])
    model = nnx.merge(graphdef, masked, state["batch_stats"])
    logits = model(images, conv_builder(state["masks"], state["hw_state"], key))
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels) & valid
    return jnp.sum(correct), jnp.sum(jnp.where(valid, losses, 0.0))

  return jax.jit(eval_step)
