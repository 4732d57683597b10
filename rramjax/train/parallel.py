"""Data parallelism: a one-axis device mesh over the batch, parameters replicated.

The same jitted step runs on one device or on N: the batch is sharded over the mesh's `data`
axis, the state is replicated, and XLA's partitioner inserts the all-reduces (gradients, batch
norm statistics), so the losses equal a one-device run of the same global batch up to float
rounding. Host callbacks and GPU kernels (the planned `ou` crossbar) cannot be partitioned by XLA:
`rramjax.hardware.planned` runs them per device under `jax.shard_map` when the step is traced
inside `use_mesh(mesh)`.

Multi-host: call `jax.distributed.initialize()` first (README, "Many devices"); the mesh then
spans every process's devices and each process feeds its own slice of the global batch
(`shard_batch`).
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from rramjax.errors import ConfigError
from rramjax.hardware.planned import DATA_AXIS as AXIS


def make_mesh(devices: int, batch_size: int) -> jax.sharding.Mesh | None:
  """The data mesh of `devices` devices (0: all of them); None for one device.

  Raises:
    ConfigError: more devices than there are, or a batch that does not split evenly.
  """
  available = jax.device_count()
  count = available if devices == 0 else devices
  if count > available:
    raise ConfigError(f"Config key train.devices: {devices} devices asked for, {available} present "
                      f"({jax.devices()[0].platform}); use at most {available}, or 0 for all.")
  if count == 1:
    return None
  if batch_size % count:
    raise ConfigError(f"Config key train.batch_size: {batch_size} does not split over {count} "
                      f"devices; use a multiple of {count}.")
  return jax.make_mesh((count,), (AXIS,), devices=jax.devices()[:count])


def use_mesh(mesh):
  """Context in which steps are traced and run on `mesh` (nothing for None)."""
  return jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext()


def replicate(mesh, tree):
  """`tree` replicated on every device of `mesh` (unchanged for None)."""
  if mesh is None:
    return tree
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(mesh, *arrays):
  """Global-batch arrays split over the mesh's data axis (unchanged for None).

  With several processes each passes the same global batch and keeps its own slice.
  """
  if mesh is None:
    return arrays
  sharding = NamedSharding(mesh, PartitionSpec(AXIS))
  if jax.process_count() == 1:
    return tuple(jax.device_put(a, sharding) for a in arrays)
  out = []
  for a in arrays:
    local = np.array_split(np.asarray(a), jax.process_count())[jax.process_index()]
    out.append(jax.make_array_from_process_local_data(sharding, local, a.shape))
  return tuple(out)

