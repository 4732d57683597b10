"""Device non-idealities of RRAM cells: programming noise and stuck-at faults.

Fault model [choice, DESIGN.md section 3 leaves it open]:
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
    g = jnp.where(stuck_0, 0.0, jnp.where(stuck_max, float(2**hw.cell_bits - 1), g))
  if stored is not None:
    g = jnp.where(stored, g, 0.0)
  return g


def read_noise(key: jax.Array, shape, lsb, hw: HardwareConfig) -> jax.Array:
  """Gaussian read noise on analog OU sums: `N(0, (read_noise_lsb * LSB)^2)`, shape `shape`."""
  return (hw.read_noise_lsb * lsb) * jax.random.normal(key, shape, jnp.float32)
