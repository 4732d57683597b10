"""Fused CPU kernels of the planned `ou` crossbar: OU sums, read noise, ADC and shift-and-add.

XLA on a CPU runs the OU sums of a pattern-pruned layer badly: the small per-OU dot products
(<= 9 rows) become batched matmuls with a tiny inner dimension, and every partial sum is written
to memory before the ADC (docs/BENCHMARKS.md compares formulations). These numba kernels keep each
OU's partial sums in a cache-resident row, digitise them and shift-add them into the outputs in one
pass, vectorised over output positions, threads over position chunks.

Layout (built by `rramjax.hardware.planned`): an image stack flattened into one row of `G`
positions per (slice, input channel), each image row followed by one zero column and each image by
one zero row, so that every 3x3 tap is a constant offset `dh * row_width + dw`; `x` holds `S`
slices x `Cin` channels x `G + 2 * lead` positions (`lead` zeros on each side). Outputs come on the
same grid (`G` positions per filter; padding positions are discarded by the caller).

Arithmetic (bit-exact with `rramjax.hardware.crossbar`): slices, cells and sums are small integers
in float32; the ADC code is `floor(sum / lsb + 0.5)` in float32, clipped to `[0, max_code]`;
codes times their `2^(s*dac_bits + j*cell_bits)` place weight are summed in int32. Read noise is
`fast_normal`'s law (a counter hash, Irwin-Hall of four bytes) drawn per (tile, column, slice,
position).
"""

from __future__ import annotations

import threading

import numba
import numpy as np

_IRWIN_HALL_STD = np.float32(np.sqrt(4 * (256**2 - 1) / 12))
# numba's default thread pool ('workqueue') must not be entered from two threads at once, and
# XLA may run independent host callbacks concurrently.
LOCK = threading.Lock()


def chunk_size(grid: int) -> int:
  """Positions per work item: enough items for the threads (and the two backward passes), each
  at most 4096 long so that its sum row (16 KiB) stays in L1."""
  threads = numba.get_num_threads()
  return int(min(4096, max(256, -(-grid // (4 * threads)))))


@numba.njit(cache=True, inline="always")
def _fmix32(h):
  h ^= h >> np.uint32(16)
  h = np.uint32((np.uint64(h) * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF))
  h ^= h >> np.uint32(13)
  h = np.uint32((np.uint64(h) * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF))
  return h ^ (h >> np.uint32(16))


@numba.njit(cache=True)
def _add_noise(acc, first, seed0, seed1, scale, length):
  """`acc[p] += scale * z(first + p)`, z the `fast_normal` law of counter `first + p`."""
  inv = np.float32(1.0) / _IRWIN_HALL_STD
  for p in range(length):
    i = np.uint32(((first + np.uint64(p)) * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF))
    h = _fmix32(_fmix32(i ^ seed0) ^ seed1)
    total = (h & np.uint32(255)) + ((h >> np.uint32(8)) & np.uint32(255)) + \
        ((h >> np.uint32(16)) & np.uint32(255)) + (h >> np.uint32(24))
    acc[p] += scale * ((np.float32(total) - np.float32(510.0)) * inv)


@numba.njit(cache=True)
def _clear(acc, length):
  for p in range(length):
    acc[p] = np.float32(0.0)


@numba.njit(cache=True)
def _fma(acc, row, weight, length):
  for p in range(length):
    acc[p] += row[p] * weight


@numba.njit(cache=True)
def _adc_add(acc, out, lsb, max_code, place, length):
  """`out[p] += place * clip(floor(acc[p] / lsb + 0.5), 0, max_code)` in int32."""
  half, zero = np.float32(0.5), np.float32(0.0)
  for p in range(length):
    code = np.floor(acc[p] / lsb + half)
    code = min(max(code, zero), max_code)
    out[p] += np.int32(code) * place


# Reductions may be reassociated (vectorised): they only sum gradients. Nothing that decides a
# code may be: no reciprocal for the division, no contraction.
_REDUCE = {"reassoc"}


@numba.njit(cache=True, fastmath=_REDUCE)
def _ste_grads(acc, g, gs, lsb, max_code, place, length):
  """Masked output gradient of one OU column: `gs = g*place` where the code is inside the ADC's
  range, else 0; returns the sum of `g*place` where it clips at the top (the PACT term)."""
  half = np.float32(0.5)
  top = np.float32(0.0)
  for p in range(length):
    code = np.floor(acc[p] / lsb + half)
    gp = g[p] * place
    inside = (code >= np.float32(0.0)) & (code <= max_code)
    gs[p] = gp if inside else np.float32(0.0)
    top += gp if code > max_code else np.float32(0.0)
  return top


@numba.njit(cache=True, fastmath=_REDUCE)
def _backprop_row(gs, weight, row, grow, length):
  """`grow += gs * weight` and return `sum(gs * row)`: one crossbar row's input and cell gradients."""
  dot = np.float32(0.0)
  for p in range(length):
    grow[p] += gs[p] * weight
    dot += gs[p] * row[p]
  return dot


@numba.njit(cache=True)
def _column_sums(x, cellmat, rc, roff, rows, t, q, s, start, lead, acc, seed0, seed1, noise,
                 stride, length):
  """The analog sums of tile `t`'s column `q` at slice `s` for positions start..start+length."""
  _clear(acc, length)
  for i in range(rows):
    weight = cellmat[t, i, q]
    if weight != 0:
      o = lead + start + roff[t, i]
      _fma(acc, x[s, rc[t, i], o:o + length], weight, length)
  if noise != 0:
    first = np.uint64((t * cellmat.shape[2] + q) * x.shape[0] + s) * np.uint64(stride) + np.uint64(start)
    _add_noise(acc, first, seed0, seed1, noise, length)


@numba.njit(parallel=True, cache=True)
def ou_forward(x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb, max_code, seeds, noise,
               cout, lead, grid, chunk):
  """Shift-and-added ADC codes `(cout, grid)` int32 of every OU column of a planned layer.

  Args:
    x: `(S, Cin, grid + 2*lead)` float32 input slices on the padded grid.
    cellmat: `(T, R, C)` float32 cell levels of each tile (0 = no cell).
    rc, roff: `(T, R)` int64 input channel and grid offset of each tile row.
    nrows, ncols: `(T,)` rows and columns of each tile.
    cf, cj: `(T, C)` filter and weight column of each tile column.
    place: `(S, wc)` int32 shift-and-add weights `2^(s*dac_bits) * column weight`.
    lsb, max_code: float32 ADC step and top code.
    seeds: `(2,)` uint32 read-noise seeds; noise: float32 noise std in sum units (0 = off).
    cout, lead, grid: filters, leading zeros, grid positions.
    chunk: positions per work item (`chunk_size`), at least the widest tap offset.
  """
  num_slices = x.shape[0]
  y = np.zeros((cout, grid), np.int32)
  chunks = (grid + chunk - 1) // chunk
  for k in numba.prange(chunks):
    start = k * chunk
    length = min(chunk, grid - start)
    acc = np.empty(chunk, np.float32)
    for t in range(cellmat.shape[0]):
      for s in range(num_slices):
        for q in range(ncols[t]):
          _column_sums(x, cellmat, rc, roff, nrows[t], t, q, s, start, lead, acc, seeds[0],
                       seeds[1], noise, grid, length)
          _adc_add(acc, y[cf[t, q], start:start + length], lsb, max_code, place[s, cj[t, q]], length)
  return y


@numba.njit(cache=True)
def _backward_chunk(k, x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb, max_code, seeds,
                    noise, lead, grid, chunk, g, gx, gcell):
  start = k * chunk
  length = min(chunk, grid - start)
  acc = np.empty(chunk, np.float32)
  gs = np.empty(chunk, np.float32)
  top = np.float32(0.0)
  for t in range(cellmat.shape[0]):
    for s in range(x.shape[0]):
      for q in range(ncols[t]):
        _column_sums(x, cellmat, rc, roff, nrows[t], t, q, s, start, lead, acc, seeds[0], seeds[1],
                     noise, grid, length)
        pl = np.float32(place[s, cj[t, q]])
        top += _ste_grads(acc, g[cf[t, q], start:start + length], gs, lsb, max_code, pl, length)
        for i in range(nrows[t]):
          o = lead + start + roff[t, i]
          c = rc[t, i]
          gcell[k, t, i, q] += _backprop_row(gs, cellmat[t, i, q], x[s, c, o:o + length],
                                             gx[s, c, o:o + length], length)
  return top


@numba.njit(parallel=True, cache=True)
def ou_backward(x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb, max_code, seeds, noise,
                lead, grid, chunk, g):
  """Gradients of `ou_forward` (times lsb) for the output gradient `g` `(cout, grid)` float32.

  Straight-through: each OU column passes `g * place` where its unclipped code lies in
  `[0, max_code]`; the ADC step gets `max_code * sum(g * place)` over codes above the range.

  Returns:
    `(gx (S, Cin, grid + 2*lead), gcell (T, R, C), glsb_top)`.
  """
  chunks = (grid + chunk - 1) // chunk
  gx = np.zeros(x.shape, np.float32)
  gcell = np.zeros((chunks,) + cellmat.shape, np.float32)
  tops = np.zeros(chunks, np.float32)
  # Neighbouring chunks write gradient into each other's border positions: even chunks first,
  # then odd ones, so no two threads write the same position.
  for parity in range(2):
    for j in numba.prange((chunks - parity + 1) // 2):
      k = 2 * j + parity
      tops[k] = _backward_chunk(k, x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb,
                                max_code, seeds, noise, lead, grid, chunk, g, gx, gcell)
  return gx, gcell.sum(axis=0), max_code * tops.sum()
