"""Pallas (Triton) GPU kernels of the planned `ou` crossbar.

One program per (OU tile, block of grid positions): it loads the tile's rows of every input slice
once, and for each of the tile's columns sums the rows in registers, adds read noise, digitises
(`floor(sum / lsb + 0.5)`, clipped: jax's Triton lowering has no `round`), shift-adds the slices
and atomically adds the column's result into its filter's output row. The backward program
recomputes the sums (and the same noise), masks the output gradient where the ADC clipped, and
atomically adds each row's input gradient and each cell's gradient. Same layout and contract as
the numba kernels (`numba_cpu.py`); float atomics make the gradients' last bits order-dependent.

On a CPU the kernels run in Pallas's interpret mode (tests), bit-exact with the other backends.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from rramjax.hardware.faults import fast_normal_counter
from rramjax.hardware.quant import adc_clip, adc_code, adc_vjp

BLOCK = 256  # grid positions per program
_TRITON = plgpu.CompilerParams(num_warps=4, num_stages=1)  # selects the Triton lowering


def _i32(value):
  """A static index as a traced int32 (the atomics' interpret-mode rule needs array indices)."""
  return jnp.int32(value)


def _normal(counter, seed0, seed1):
  """`fast_normal`'s sample of uint32 counters (its jax code lowers to Triton as it is)."""
  return fast_normal_counter((seed0, seed1), counter)


def _rows(x_ref, rc_ref, roff_ref, t, position, *, slices, height, lead):
  """The tile's rows `[slice][row]`, each `(BLOCK,)`; rows past the tile's end read channel 0
  (their cells are 0), positions past the grid read the zero padding."""
  return [[plgpu.load(x_ref.at[s, rc_ref[t, i], lead + roff_ref[t, i] + position])
           for i in range(height)] for s in range(slices)]


def _column_sums(rows, cm_ref, t, q, s, *, height):
  acc = rows[s][0] * cm_ref[t, 0, q]
  for i in range(1, height):
    acc = acc + rows[s][i] * cm_ref[t, i, q]
  return acc


def _noise(acc, seeds_ref, noise, t, q, s, position, *, columns, slices, grid, noisy):
  if not noisy:
    return acc
  base = ((t * columns + q) * slices + s).astype(jnp.uint32) * jnp.uint32(grid)
  return acc + noise * _normal(base + position.astype(jnp.uint32), seeds_ref[0], seeds_ref[1])


def _forward_kernel(x_ref, cm_ref, rc_ref, roff_ref, nrows_ref, cf_ref, cj_ref, ncols_ref, place_ref,
                    scalars_ref, seeds_ref, y_in_ref, y_ref, *, slices, height, columns, grid, lead,
                    noisy):
  del y_in_ref  # the zeros y_ref starts from (aliased)
  t, block = pl.program_id(0), pl.program_id(1)
  position = block * BLOCK + jnp.arange(BLOCK)
  lsb, noise, max_code = scalars_ref[0], scalars_ref[1], scalars_ref[2]
  rows = _rows(x_ref, rc_ref, roff_ref, t, position, slices=slices, height=height, lead=lead)
  for q in range(columns):
    total = jnp.zeros((BLOCK,), jnp.int32)
    for s in range(slices):
      acc = _noise(_column_sums(rows, cm_ref, t, q, s, height=height), seeds_ref, noise, t, q, s,
                   position, columns=columns, slices=slices, grid=grid, noisy=noisy)
      code = adc_clip(adc_code(acc, lsb), max_code)
      total = total + code.astype(jnp.int32) * place_ref[s, cj_ref[t, q]]
    # Columns past the tile's end (filter 0, cells 0) add 0, even under read noise. No masks on
    # the atomics: the grid is padded to whole blocks (interpret mode has no masked atomics).
    total = jnp.where(q < ncols_ref[t], total, 0)
    plgpu.atomic_add(y_ref, (cf_ref[t, q], position), total)


def _backward_kernel(x_ref, cm_ref, rc_ref, roff_ref, nrows_ref, cf_ref, cj_ref, ncols_ref,
                     place_ref, scalars_ref, seeds_ref, g_ref, gx_in_ref, gcell_in_ref, top_in_ref,
                     gx_ref, gcell_ref, top_ref, *, slices, height, columns, grid, lead, noisy):
  del gx_in_ref, gcell_in_ref, top_in_ref  # the zeros the outputs start from (aliased)
  t, block = pl.program_id(0), pl.program_id(1)
  position = block * BLOCK + jnp.arange(BLOCK)
  valid = position < grid
  lsb, noise, max_code = scalars_ref[0], scalars_ref[1], scalars_ref[2]
  rows = _rows(x_ref, rc_ref, roff_ref, t, position, slices=slices, height=height, lead=lead)
  grows = [[jnp.zeros((BLOCK,), jnp.float32) for _ in range(height)] for _ in range(slices)]
  top = jnp.zeros((), jnp.float32)
  for q in range(columns):
    g = jnp.where(valid & (q < ncols_ref[t]), plgpu.load(g_ref.at[cf_ref[t, q], position]), 0.0)
    for s in range(slices):
      acc = _noise(_column_sums(rows, cm_ref, t, q, s, height=height), seeds_ref, noise, t, q, s,
                   position, columns=columns, slices=slices, grid=grid, noisy=noisy)
      gp = g * place_ref[s, cj_ref[t, q]].astype(jnp.float32)
      gs, above = adc_vjp(adc_code(acc, lsb), max_code, gp)
      top = top + above
      for i in range(height):
        grows[s][i] = grows[s][i] + gs * cm_ref[t, i, q]
        plgpu.atomic_add(gcell_ref, (t, _i32(i), _i32(q)), jnp.sum(gs * rows[s][i]))
  for s in range(slices):
    for i in range(height):
      # Rows past the tile's end have cells 0: they add 0 to channel 0.
      plgpu.atomic_add(gx_ref, (_i32(s), rc_ref[t, i], lead + roff_ref[t, i] + position),
                       grows[s][i])
  plgpu.atomic_add(top_ref, (_i32(0),), top)


def _arrays(spec):
  i32 = lambda a: jnp.asarray(a, jnp.int32)
  return (i32(spec.rc), i32(spec.roff), i32(spec.nrows), i32(spec.cf), i32(spec.cj), i32(spec.ncols),
          i32(spec.place))


def _static(spec, x, cellmat):
  return dict(slices=x.shape[0], height=cellmat.shape[1], columns=cellmat.shape[2],
              grid=spec.grid.size, lead=spec.grid.lead, noisy=spec.noisy)


def _interpret() -> bool:
  from rramjax.hardware import planned  # pylint: disable=g-import-not-at-top
  return not planned.compiled_for_gpu()


def _padded(spec):
  """Grid positions rounded up to whole blocks."""
  return pl.cdiv(spec.grid.size, BLOCK) * BLOCK


def ou_forward(spec, x, cellmat, lsb, seeds, noise, max_code):
  """`(cout, G)` int32 shift-and-added codes (see `numba_cpu.ou_forward`)."""
  static = _static(spec, x, cellmat)
  padded = _padded(spec)
  call = pl.pallas_call(
      functools.partial(_forward_kernel, **static), grid=(cellmat.shape[0], padded // BLOCK),
      out_shape=jax.ShapeDtypeStruct((spec.cout, padded), jnp.int32),
      input_output_aliases={11: 0}, interpret=_interpret(), name="ou_forward",
      compiler_params=_TRITON)
  scalars = jnp.stack([lsb, noise, max_code]).astype(jnp.float32)
  x = jnp.pad(x, ((0, 0), (0, 0), (0, padded - spec.grid.size)))
  y = call(x, cellmat, *_arrays(spec), scalars, seeds, jnp.zeros((spec.cout, padded), jnp.int32))
  return y[:, :spec.grid.size]


def ou_backward(spec, x, cellmat, lsb, seeds, noise, max_code, g):
  """`(gx, gcell, g_lsb)` (see `numba_cpu.ou_backward`)."""
  static = _static(spec, x, cellmat)
  padded = _padded(spec)
  extra = padded - spec.grid.size
  x = jnp.pad(x, ((0, 0), (0, 0), (0, extra)))
  call = pl.pallas_call(
      functools.partial(_backward_kernel, **static), grid=(cellmat.shape[0], padded // BLOCK),
      out_shape=(jax.ShapeDtypeStruct(x.shape, jnp.float32),
                 jax.ShapeDtypeStruct(cellmat.shape, jnp.float32),
                 jax.ShapeDtypeStruct((1,), jnp.float32)),
      input_output_aliases={12: 0, 13: 1, 14: 2}, interpret=_interpret(), name="ou_backward",
      compiler_params=_TRITON)
  scalars = jnp.stack([lsb, noise, max_code]).astype(jnp.float32)
  g = jnp.pad(g.astype(jnp.float32), ((0, 0), (0, extra)))
  gx, gcell, top = call(x, cellmat, *_arrays(spec), scalars, seeds, g, jnp.zeros(x.shape, jnp.float32),
                        jnp.zeros(cellmat.shape, jnp.float32), jnp.zeros((1,), jnp.float32))
  return gx[:, :, :x.shape[2] - extra], gcell, top[0]
