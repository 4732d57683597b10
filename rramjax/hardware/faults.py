"""Device non-idealities of RRAM cells: programming noise, stuck-at faults, and read-noise draws.

Fault model [choice, docs/MODEL.md section 3]:
  * a cell is stuck at level 0 with probability `stuck_at_0_rate`, stuck at the top level
    `2^cell_bits - 1` with probability `stuck_at_max_rate` (exclusive events, one uniform draw);
  * every other stored cell gets Gaussian programming noise, `g = level + N(0, prog_noise^2)`
    in cell levels, not clipped to [0, 2^cell_bits - 1] (so the std is exactly the parameter);
  * cells that are not stored (positions outside the pattern, pruned kernels) stay 0.
The draw depends only on the key and the cells' shape: one key is one programmed chip. The
training loop passes a new key per step to train under resampled faults, or a fixed key to
simulate one chip.

References:
  Chen et al., "Rescuing Memristor-based Neuromorphic Design with High Defects", DAC 2017
  (stuck-at-0/1 fault rates in RRAM crossbars).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.hardware.config import HardwareConfig


def has_device_faults(hw: HardwareConfig) -> bool:
  """True when programming noise or stuck-at cells are enabled (static, decides tracing)."""
  return hw.prog_noise > 0 or hw.stuck_at_0_rate > 0 or hw.stuck_at_max_rate > 0


def program_cells(cells: jax.Array, hw: HardwareConfig, key: jax.Array,
                  stored: jax.Array | None = None) -> jax.Array:
  """Programs integer cell levels into noisy, possibly stuck, conductances (in cell levels).

  `g = 0` if stuck at 0, `2^cell_bits - 1` if stuck at max, else `level + prog_noise * N(0, 1)`;
  `g = 0` where the cell is not stored. Gradient: 1 for cells that are not stuck, 0 for stuck
  ones (their conductance no longer depends on the weight).

  Args:
    cells: float cell levels, any shape.
    hw: hardware config (prog_noise, stuck_at_0_rate, stuck_at_max_rate, cell_bits).
    key: a jax.random key; same key and shape give the same chip.
    stored: optional boolean array broadcastable to cells; False marks cells that do not exist.

  Returns:
    Conductances shaped like cells (float32).
  """
  if not has_device_faults(hw):
    return cells
  key_stuck, key_noise = jax.random.split(key)
  g = cells
  if hw.prog_noise > 0:
    g = g + hw.prog_noise * jax.random.normal(key_noise, cells.shape, cells.dtype)
  if hw.stuck_at_0_rate > 0 or hw.stuck_at_max_rate > 0:
    u = jax.random.uniform(key_stuck, cells.shape, cells.dtype)
    stuck_0 = u < hw.stuck_at_0_rate
    stuck_max = (u >= hw.stuck_at_0_rate) & (u < hw.stuck_at_0_rate + hw.stuck_at_max_rate)
    g = jnp.where(stuck_0, 0.0, jnp.where(stuck_max, float(hw.cell_max_level), g))
  if stored is not None:
    g = jnp.where(stored, g, 0.0)
  return g


def _fmix32(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finalizer: a bijection of uint32 with full avalanche."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


# Std of the sum of four independent uniform bytes: sqrt(4 * (256^2 - 1) / 12).
_IRWIN_HALL_STD = float(np.sqrt(4 * (256**2 - 1) / 12))


def fast_normal(key: jax.Array, shape) -> jax.Array:
  """Approximately standard-normal float32 noise, about 10x cheaper than `jax.random.normal` on CPU.

  The read noise of every OU sum is the 'ou' model's largest cost under noise (one draw per sum:
  ~10^9 per 1,000 test images at width 0.5), and threefry bits dominate it on a CPU. Here element
  i (row-major) gets one counter-based hash `h = fmix32(fmix32(i * 0x9E3779B9 ^ s0) ^ s1)` of
  two 32-bit words (s0, s1) drawn from `key`, and the sum of its four bytes, centred and scaled,
  is the sample (Irwin-Hall of 4 uniforms): mean 0 and variance 1 exactly, 1021 levels, bounded at
  +-3.45 (a Gaussian exceeds that with probability 5.6e-4), excess kurtosis -0.3. Same key, same
  shape -> same values; jit- and vmap-safe. Not for cryptography or sampling tails.

  Args:
    key: a jax.random key.
    shape: output shape (at most 2^32 elements; indices wrap beyond).

  Returns:
    float32 array of `shape`.
  """
  shape = tuple(shape)
  size = int(np.prod(shape, dtype=np.int64))
  index = jax.lax.iota(jnp.uint32, size).reshape(shape)
  return fast_normal_counter(jax.random.bits(key, (2,), jnp.uint32), index)


def fast_normal_counter(seeds: jax.Array, index: jax.Array) -> jax.Array:
  """`fast_normal`'s sample for each uint32 counter in `index`, given its two seed words.

  Args:
    seeds: `(2,)` uint32, `jax.random.bits(key, (2,), jnp.uint32)`.
    index: uint32 counters, any shape; equal counters give equal samples.

  Returns:
    float32 array shaped like `index`.
  """
  h = _fmix32(_fmix32((index * jnp.uint32(0x9E3779B9)) ^ seeds[0]) ^ seeds[1])
  total = (h & 255) + ((h >> 8) & 255) + ((h >> 16) & 255) + (h >> 24)
  return (total.astype(jnp.float32) - 510.0) * (1.0 / _IRWIN_HALL_STD)


def read_noise(key: jax.Array, shape, lsb, hw: HardwareConfig) -> jax.Array:
  """Read noise on analog OU sums, std `read_noise_lsb * LSB` (`fast_normal`), shape `shape`."""
  return (hw.read_noise_lsb * lsb) * fast_normal(key, shape)
