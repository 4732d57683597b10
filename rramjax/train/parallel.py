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
import functools
import os
from typing import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from rramjax.errors import ConfigError
from rramjax.hardware.planned import DATA_AXIS as AXIS


def split_cpu(count: int, warn: Callable[[str], None] | None = None) -> int:
  """Splits the host CPU into `count` jax devices (0: one per core): `train.cpu_devices`.

  XLA runs the small convolutions of a small network on a few cores poorly; two CPU devices, each
  computing half of a batch (`train.devices`), run a small VGG's train step 1.3-1.7x faster on two
  cores (docs/BENCHMARKS.md). jax takes the count only before its backends start (the first jax
  operation): `rramjax run` calls this first. When jax has already started with another count,
  the run goes on with the devices there are and `warn` says so. Other platforms (GPU) are not
  affected.

  Returns:
    The number of CPU devices jax has.
  """
  wanted = (os.cpu_count() or 1) if count == 0 else count
  try:
    jax.config.update("jax_num_cpu_devices", wanted)
  except RuntimeError:  # the backends have started
    pass
  present = len(jax.devices("cpu"))
  if present != wanted and warn is not None:
    warn(f"train.cpu_devices={count}: jax had already started with {present} CPU device(s), "
         f"so the run uses those (set it before any jax operation, as `rramjax run` does).")
  return present


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


@functools.lru_cache(maxsize=1)
def one_device_mesh() -> jax.sharding.Mesh:
  """A data mesh of the first device alone (work that must not be spread: see `Trainer.place`)."""
  return jax.make_mesh((1,), (AXIS,), devices=jax.devices()[:1])


def use_mesh(mesh):
  """Context in which steps are traced and run on `mesh` (nothing for None)."""
  return jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext()


def replicate(mesh, tree):
  """`tree` replicated on every device of `mesh` (unchanged for None)."""
  if mesh is None:
    return tree
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(mesh, *arrays):
  """Global-batch arrays split over the mesh's data axis (unchanged for None or one device).

  With several processes each passes the same global batch and keeps its own slice.
  """
  if mesh is None or mesh.size == 1:
    return arrays
  sharding = NamedSharding(mesh, PartitionSpec(AXIS))
  if jax.process_count() == 1:
    return tuple(jax.device_put(a, sharding) for a in arrays)
  out = []
  for a in arrays:
    local = np.array_split(np.asarray(a), jax.process_count())[jax.process_index()]
    out.append(jax.make_array_from_process_local_data(sharding, local, a.shape))
  return tuple(out)

