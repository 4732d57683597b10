"""Fused CPU kernels of the planned `ou` crossbar: OU sums, read noise, ADC and shift-and-add.

XLA on a CPU runs the OU sums of a pattern-pruned layer badly: the per-OU dot products (<= 9 rows)
become batched matmuls with a tiny inner dimension, and every partial sum is written to memory
before the ADC (docs/BENCHMARKS.md compares formulations). These numba kernels compute each OU
column's sums in registers, digitise them and shift-add them into the outputs in one pass,
vectorised over output positions, with threads over position chunks.

Layout (built by `rramjax.hardware.planned`): an image stack flattened into one row of `G`
positions per (slice, input channel), each image row followed by one zero column and each image by
one zero row, so that every 3x3 tap is a constant offset `dh * row_width + dw`; `x` holds `S`
slices x `Cin` channels x `G + 2 * lead` positions (`lead` zeros on each side). Outputs come on the
same grid (`G` positions per filter; padding positions are discarded by the caller).

Arithmetic (bit-exact with `rramjax.hardware.crossbar`): slices, cells and sums are small integers
in float32 (exact in any summation order); the ADC code is `floor(sum / lsb + 0.5)` in float32,
clipped to `[0, max_code]`; codes times their `2^(s*dac_bits + j*cell_bits)` place weight are summed
in int32. Read noise is `fast_normal`'s law (a counter hash, Irwin-Hall of four bytes) drawn per
(tile, column, slice, position), the same for every entry of a batch that has the same seeds (a
sweep's points): the forward kernel draws such values once for all of them. Gradient sums may be
reassociated (vectorised); nothing that decides a code may (no reciprocal for the division, no
contraction).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

_INV_STD = np.float32(1.0 / np.sqrt(4 * (256**2 - 1) / 12))
# numba's default thread pool ('workqueue') must not be entered from two threads at once, and
# XLA may run independent host callbacks concurrently.
LOCK = threading.Lock()
_REDUCE = {"reassoc"}


def chunk_size(grid: int, widest_offset: int) -> int:
  """Positions per work item: enough items for the threads (and the two backward passes), each
  at most 4096 long (its rows stay in L1/L2), never shorter than twice the widest tap offset (so
  that a chunk's gradient writes reach only its neighbours)."""
  threads = numba.get_num_threads()
  return int(max(2 * widest_offset + 2, min(4096, max(256, -(-grid // (4 * threads))))))


# numba widens uint32 products to 64 bits, which AVX2 multiplies four lanes at a time (vpmuludq);
# these intrinsics keep the hash's arithmetic in 32-bit lanes (vpmulld, eight lanes): ~1.6x faster
# noise, the same bits (docs/BENCHMARKS.md).
@intrinsic
def _mul32(typingctx, a, b):  # pylint: disable=unused-argument
  """`a * b` modulo 2^32 (uint32)."""
  def codegen(context, builder, signature, args):  # pylint: disable=unused-argument
    return builder.mul(args[0], args[1])
  return types.uint32(types.uint32, types.uint32), codegen


@intrinsic
def _add32(typingctx, a, b):  # pylint: disable=unused-argument
  """`a + b` modulo 2^32 (uint32): a noise counter in 32-bit lanes (numba widens it to 64 bits,
  which the vectorised loop then packs back, four lanes at a time)."""
  def codegen(context, builder, signature, args):  # pylint: disable=unused-argument
    return builder.add(args[0], args[1])
  return types.uint32(types.uint32, types.uint32), codegen


@intrinsic
def _xorshift32(typingctx, a, shift):  # pylint: disable=unused-argument
  """`a ^ (a >> shift)` (uint32)."""
  def codegen(context, builder, signature, args):  # pylint: disable=unused-argument
    return builder.xor(args[0], builder.lshr(args[0], args[1]))
  return types.uint32(types.uint32, types.uint32), codegen


@numba.njit(cache=True, inline="always")
def _fmix32(h):
  """MurmurHash3's 32-bit finaliser (`rramjax.hardware.faults._fmix32`)."""
  h = _mul32(_xorshift32(h, np.uint32(16)), np.uint32(0x85EBCA6B))
  h = _mul32(_xorshift32(h, np.uint32(13)), np.uint32(0xC2B2AE35))
  return _xorshift32(h, np.uint32(16))


@numba.njit(cache=True, inline="always")
def _normal(counter, seed0, seed1):
  """`fast_normal`'s sample of one uint32 counter."""
  i = _mul32(counter, np.uint32(0x9E3779B9))
  h = _fmix32(np.uint32(_fmix32(np.uint32(i ^ seed0)) ^ seed1))
  total = (h & np.uint32(255)) + ((h >> np.uint32(8)) & np.uint32(255)) + \
      ((h >> np.uint32(16)) & np.uint32(255)) + (h >> np.uint32(24))
  return (np.float32(np.int32(total)) - np.float32(510.0)) * _INV_STD


@numba.njit(cache=True, inline="always")
def _counter(t, columns, q, num_slices, s, grid, start):
  """The read-noise counter of a column's first position, `((t*C + q)*S + s)*grid + start`,
  modulo 2^32 (as `fast_normal_counter` wraps it)."""
  first = np.uint64((t * columns + q) * num_slices + s) * np.uint64(grid) + np.uint64(start)
  return np.uint32(first & np.uint64(0xFFFFFFFF))


# LLVM vectorises a loop over positions only while it checks few pointers for overlap at run
# time: so four rows at a time (plus the output), not nine.
@numba.njit(cache=True)
def _sums4_adc(r0, r1, r2, r3, w, i, out, lsb, max_code, place, length):
  """Noiseless fused column of <= 4 rows: `out += place * clip(floor(sum/lsb + 0.5), 0, top)`."""
  w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
  half, zero = np.float32(0.5), np.float32(0.0)
  for p in range(length):
    total = r0[p] * w0 + r1[p] * w1 + r2[p] * w2 + r3[p] * w3
    code = min(max(np.floor(total / lsb + half), zero), max_code)
    out[p] += np.int32(code) * place


@numba.njit(cache=True)
def _sums4_draws_adc(r0, r1, r2, r3, w, out, lsb, max_code, place, length, z, noise):
  """`_sums4_adc` with read noise `noise * z` (`z` from `_draw`): the operations of
  `_column_sums` then `_adc_add` in the same order (so the same codes)."""
  w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
  half, zero = np.float32(0.5), np.float32(0.0)
  for p in range(length):
    total = r0[p] * w0 + r1[p] * w1 + r2[p] * w2 + r3[p] * w3
    total += noise * z[p]
    code = min(max(np.floor(total / lsb + half), zero), max_code)
    out[p] += np.int32(code) * place


@numba.njit(cache=True, fastmath=_REDUCE)
def _sums4_ste(r0, r1, r2, r3, w, g, gs, lsb, max_code, place, length):
  """Noiseless fused `_ste_grads` of a column of <= 4 rows (the sums recomputed in registers)."""
  w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
  half = np.float32(0.5)
  top = np.float32(0.0)
  for p in range(length):
    code = np.floor((r0[p] * w0 + r1[p] * w1 + r2[p] * w2 + r3[p] * w3) / lsb + half)
    gp = g[p] * place
    gs[p] = gp if (code >= np.float32(0.0)) & (code <= max_code) else np.float32(0.0)
    top += gp if code > max_code else np.float32(0.0)
  return top


@numba.njit(cache=True)
def _sums4(acc, r0, r1, r2, r3, w, i, length, first):
  """`acc = sum` (first group of rows) or `acc += sum` of four rows weighted by `w[i:i+4]`."""
  w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
  if first:
    for p in range(length):
      acc[p] = r0[p] * w0 + r1[p] * w1 + r2[p] * w2 + r3[p] * w3
  else:
    for p in range(length):
      acc[p] += r0[p] * w0 + r1[p] * w1 + r2[p] * w2 + r3[p] * w3


@numba.njit(cache=True)
def _add_noise(acc, first, seed0, seed1, noise, length):
  for p in range(length):
    acc[p] += noise * _normal(_add32(first, np.uint32(p)), seed0, seed1)


@numba.njit(cache=True)
def _draw(z, first, seed0, seed1, length):
  """`z[p]` = the read-noise draw of counter `first + p` (shared by the entries of one seed)."""
  for p in range(length):
    z[p] = _normal(_add32(first, np.uint32(p)), seed0, seed1)


@numba.njit(cache=True)
def _add_draws(acc, z, noise, length):
  """`_add_noise` with the draws made beforehand (`_draw`): the same values."""
  for p in range(length):
    acc[p] += noise * z[p]


@numba.njit(cache=True)
def _adc_add(acc, out, lsb, max_code, place, length):
  """`out[p] += place * clip(floor(acc[p] / lsb + 0.5), 0, max_code)` in int32."""
  half, zero = np.float32(0.5), np.float32(0.0)
  for p in range(length):
    code = min(max(np.floor(acc[p] / lsb + half), zero), max_code)
    out[p] += np.int32(code) * place


@numba.njit(cache=True, fastmath=_REDUCE)
def _ste_grads(acc, g, gs, lsb, max_code, place, length):
  """Masked output gradient of one OU column: `gs = g*place` where the code is inside the ADC's
  range, else 0; returns the sum of `g*place` where it clips at the top (the PACT term)."""
  half = np.float32(0.5)
  top = np.float32(0.0)
  for p in range(length):
    code = np.floor(acc[p] / lsb + half)
    gp = g[p] * place
    gs[p] = gp if (code >= np.float32(0.0)) & (code <= max_code) else np.float32(0.0)
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
def _row(x, zero, rc, roff, t, i, rows, s, o, length):
  """Row `i` of tile `t` at slice `s`, positions o..o+length; a zero row past the tile's rows."""
  if i < rows:
    a = o + roff[t, i]
    return x[s, rc[t, i], a:a + length]
  return zero[:length]


@numba.njit(cache=True)
def _weights(cellmat, w, t, q, rows):
  """Cells of tile `t`'s column `q` in `w` (padded with zeros to a multiple of four)."""
  w[:] = np.float32(0.0)
  for i in range(rows):
    w[i] = cellmat[t, i, q]


@numba.njit(cache=True)
def _first_rows(x, zero, rc, roff, t, rows, s, o, length):
  """Rows 0-3 of tile `t` at slice `s` (zero rows past its end): the fused kernels' operands."""
  return (_row(x, zero, rc, roff, t, 0, rows, s, o, length),
          _row(x, zero, rc, roff, t, 1, rows, s, o, length),
          _row(x, zero, rc, roff, t, 2, rows, s, o, length),
          _row(x, zero, rc, roff, t, 3, rows, s, o, length))


@numba.njit(cache=True)
def _column_sums(x, zero, rc, roff, rows, t, q, s, o, w, acc, length, seeds, noise, columns, grid,
                 start):
  """The analog sums of tile `t`'s column `q` (weights `w`) at slice `s` into `acc`, four rows at
  a time, plus read noise (counter `((t*C + q)*S + s)*grid + position`) when `noise` is not 0."""
  for b in range(0, max(rows, 1), 4):
    _sums4(acc, _row(x, zero, rc, roff, t, b, rows, s, o, length),
           _row(x, zero, rc, roff, t, b + 1, rows, s, o, length),
           _row(x, zero, rc, roff, t, b + 2, rows, s, o, length),
           _row(x, zero, rc, roff, t, b + 3, rows, s, o, length), w, b, length, b == 0)
  if noise != 0:
    _add_noise(acc, _counter(t, columns, q, x.shape[0], s, grid, start), seeds[0], seeds[1], noise,
               length)


@numba.njit(parallel=True, cache=True)
def ou_forward(x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb, max_code, seed_of, seeds,
               noise, cout, lead, grid, chunk):
  """Shift-and-added ADC codes `(B, cout, grid)` int32 of every OU column of a planned layer, for
  `B` entries (e.g. the points of a sweep) with the same cells.

  Entries that draw read noise with the same seeds draw the same values (the counters do not
  depend on the entry): each column's draws are made once per chunk, in a loop of their own, and
  shared by those entries, the work that dominates a noisy evaluation. (Even for one entry the
  separate loop is faster than drawing inside the fused sums: docs/BENCHMARKS.md.)

  Args:
    x: `(B, S, Cin, grid + 2*lead)` float32 input slices on the padded grid.
    cellmat: `(T, R, C)` float32 cell levels of each tile (0 = no cell).
    rc, roff: `(T, R)` int64 input channel and grid offset of each tile row.
    nrows, ncols: `(T,)` rows and columns of each tile.
    cf, cj: `(T, C)` filter and weight column of each tile column.
    place: `(S, wc)` int32 shift-and-add weights `2^(s*dac_bits) * column weight`.
    lsb, max_code: `(B,)` float32 ADC step and top code.
    seed_of: `(B,)` int64 row of `seeds` of each entry; seeds: `(U, 2)` uint32 read-noise seeds.
    noise: `(B,)` float32 noise std in sum units (0 = off).
    cout, lead, grid: filters, leading zeros, grid positions.
    chunk: positions per work item (`chunk_size`).
  """
  entries, num_slices, columns = x.shape[0], x.shape[1], cellmat.shape[2]
  drawn = np.zeros(seeds.shape[0], np.bool_)  # seed rows of noisy entries
  for b in range(entries):
    if noise[b] != 0:
      drawn[seed_of[b]] = True
  y = np.zeros((entries, cout, grid), np.int32)
  chunks = (grid + chunk - 1) // chunk
  for k in numba.prange(chunks):
    start = k * chunk
    length = min(chunk, grid - start)
    o = lead + start
    acc = np.empty(chunk, np.float32)
    zero = np.zeros(chunk, np.float32)
    draws = np.empty((seeds.shape[0], columns, chunk), np.float32)
    w = np.empty(-(-cellmat.shape[1] // 4) * 4, np.float32)
    for t in range(cellmat.shape[0]):
      rows = nrows[t]
      for s in range(num_slices):
        for u in range(seeds.shape[0]):
          if drawn[u]:
            for q in range(ncols[t]):
              _draw(draws[u, q], _counter(t, columns, q, num_slices, s, grid, start), seeds[u, 0],
                    seeds[u, 1], length)
        for b in range(entries):
          xb, u, sigma = x[b], seed_of[b], noise[b]
          r0, r1, r2, r3 = _first_rows(xb, zero, rc, roff, t, rows, s, o, length)
          for q in range(ncols[t]):
            out = y[b, cf[t, q], start:start + length]
            pl = place[s, cj[t, q]]
            _weights(cellmat, w, t, q, rows)
            if sigma == 0 and rows <= 4:  # the common case (patterns of <= 4 taps), fully fused
              _sums4_adc(r0, r1, r2, r3, w, 0, out, lsb[b], max_code[b], pl, length)
            elif rows <= 4:  # the same with read noise (draws as in `_column_sums`)
              _sums4_draws_adc(r0, r1, r2, r3, w, out, lsb[b], max_code[b], pl, length,
                               draws[u, q], sigma)
            else:
              _column_sums(xb, zero, rc, roff, rows, t, q, s, o, w, acc, length, seeds[u],
                           np.float32(0.0), columns, grid, start)
              if sigma != 0:
                _add_draws(acc, draws[u, q], sigma, length)
              _adc_add(acc, out, lsb[b], max_code[b], pl, length)
  return y


@numba.njit(cache=True)
def _backward_chunk(k, x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb, max_code, seeds,
                    noise, lead, grid, chunk, g, gx, gcell):
  num_slices, columns = x.shape[0], cellmat.shape[2]
  start = k * chunk
  length = min(chunk, grid - start)
  o = lead + start
  acc = np.empty(chunk, np.float32)
  gs = np.empty(chunk, np.float32)
  zero = np.zeros(chunk, np.float32)
  w = np.empty(-(-cellmat.shape[1] // 4) * 4, np.float32)
  top = np.float32(0.0)
  for t in range(cellmat.shape[0]):
    rows = nrows[t]
    for s in range(num_slices):
      r0, r1, r2, r3 = _first_rows(x, zero, rc, roff, t, rows, s, o, length)
      for q in range(ncols[t]):
        _weights(cellmat, w, t, q, rows)
        pl = np.float32(place[s, cj[t, q]])
        g_col = g[cf[t, q], start:start + length]
        if noise == 0 and rows <= 4:
          # The sums in registers (exact small integers: any order gives the same codes).
          top += _sums4_ste(r0, r1, r2, r3, w, g_col, gs, lsb, max_code, pl, length)
        else:
          _column_sums(x, zero, rc, roff, rows, t, q, s, o, w, acc, length, seeds, noise, columns,
                       grid, start)
          top += _ste_grads(acc, g_col, gs, lsb, max_code, pl, length)
        for i in range(rows):
          a = o + roff[t, i]
          c = rc[t, i]
          gcell[k, t, i, q] += _backprop_row(gs, w[i], x[s, c, a:a + length],
                                             gx[s, c, a:a + length], length)
  return top


@numba.njit(parallel=True, cache=True)
def ou_backward(x, cellmat, rc, roff, nrows, cf, cj, ncols, place, lsb, max_code, seeds, noise,
                lead, grid, chunk, g):
  """Gradients of one entry of `ou_forward` (times lsb) for the output gradient `g` `(cout, grid)`
  float32 (one entry's `x`, `lsb`, `max_code`, `seeds (2,)` and `noise`).

  Straight-through: each OU column passes `g * place` where its unclipped code lies in
  `[0, max_code]`; the ADC step gets `max_code * sum(g * place)` over codes above the range.

  Returns:
    `(gx (S, Cin, grid + 2*lead), gcell (T, R, C), glsb)`.
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


# Layout: NHWC codes <-> the padded grid, in parallel over images ---------------------------------
@numba.njit(parallel=True, cache=True)
def _slice_grid(codes, slices, dac_bits, lead, row, size, out):
  """DAC slices `(S, Cin, size + 2*lead)` float32 of NHWC integer codes on the padded grid, into
  `out` (each image's rows written one contiguous run at a time, zeros at the padding)."""
  n, h, w, cin = codes.shape
  top = (1 << dac_bits) - 1
  zero = np.float32(0.0)
  for b in numba.prange(n):
    for c in range(cin):
      for s in range(slices):
        shift = s * dac_bits
        for i in range(h):
          base = lead + (b * (h + 1) + i) * row
          for j in range(w):
            out[s, c, base + j] = np.float32((np.int64(codes[b, i, j, c]) >> shift) & top)
          for j in range(w, row):
            out[s, c, base + j] = zero
        base = lead + (b * (h + 1) + h) * row
        for j in range(row):
          out[s, c, base + j] = zero
  for s in range(slices):
    for c in range(cin):
      for p in range(lead):
        out[s, c, p] = zero
        out[s, c, lead + size + p] = zero
  return out


@numba.njit(parallel=True, cache=True)
def _grid_to_nhwc(acc, n, h, w, row):
  """`float32(acc)` `(B, Cout, grid)` of the grid's image positions as `(B, N, H, W, Cout)`."""
  entries, cout = acc.shape[0], acc.shape[1]
  out = np.empty((entries, n, h, w, cout), np.float32)
  for e in numba.prange(entries * n):
    a, b = e // n, e % n
    for i in range(h):
      base = (b * (h + 1) + i) * row
      for j in range(w):
        for f in range(cout):
          out[a, b, i, j, f] = np.float32(acc[a, f, base + j])
  return out


@numba.njit(parallel=True, cache=True)
def _nhwc_to_grid(g, row, size):
  """`(N, H, W, Cout)` -> `(Cout, size)` on the grid (zeros at the padding)."""
  n, h, w, cout = g.shape
  out = np.zeros((cout, size), np.float32)
  for b in numba.prange(n):
    for i in range(h):
      base = (b * (h + 1) + i) * row
      for j in range(w):
        for f in range(cout):
          out[f, base + j] = g[b, i, j, f]
  return out


@numba.njit(parallel=True, cache=True)
def _grid_to_code_grad(gx, weights, n, h, w, row, lead):
  """`sum_s weights[s] * gx[s]` at the image positions: the code gradient `(N, H, W, Cin)`."""
  slices, cin = gx.shape[0], gx.shape[1]
  out = np.zeros((n, h, w, cin), np.float32)
  for b in numba.prange(n):
    for i in range(h):
      base = lead + (b * (h + 1) + i) * row
      for j in range(w):
        for c in range(cin):
          total = np.float32(0.0)
          for s in range(slices):
            total += gx[s, c, base + j] * weights[s]
          out[b, i, j, c] = total
  return out


def _grid_slices(codes, spec):
  """`_slice_grid` of NHWC codes into a new array."""
  grid = spec.grid
  out = np.empty((spec.slices, codes.shape[-1], grid.size + 2 * grid.lead), np.float32)
  return _slice_grid(codes, spec.slices, spec.dac_bits, grid.lead, grid.row, grid.size, out)


def _kernel_args(spec):
  return (spec.rc, spec.roff, spec.nrows, spec.cf, spec.cj, spec.ncols, spec.place)


def forward_nhwc(codes, cellmat, spec, lsb, seeds, noise, max_code):
  """The planned layer's shift-added codes `(B, N, H, W, Cout)` float32 from the NHWC codes
  `(B, N, H, W, Cin)` of `B` entries with the same cells (the caller multiplies by lsb: in XLA,
  where the reference path's product is fused the same way). `lsb`, `noise` and `max_code` are
  `(B,)`, `seeds` `(B, 2)`: entries with equal seeds share their read-noise draws."""
  grid = spec.grid
  x = np.empty((codes.shape[0], spec.slices, codes.shape[-1], grid.size + 2 * grid.lead), np.float32)
  for b in range(codes.shape[0]):
    _slice_grid(codes[b], spec.slices, spec.dac_bits, grid.lead, grid.row, grid.size, x[b])
  unique, seed_of = np.unique(np.asarray(seeds, np.uint32).reshape(-1, 2), axis=0,
                              return_inverse=True)
  acc = ou_forward(x, cellmat, *_kernel_args(spec), np.asarray(lsb, np.float32),
                   np.asarray(max_code, np.float32), seed_of.reshape(-1).astype(np.int64),
                   np.ascontiguousarray(unique), np.asarray(noise, np.float32), spec.cout,
                   grid.lead, grid.size, chunk_size(grid.size, grid.lead))
  return _grid_to_nhwc(acc, grid.n, grid.h, grid.w, grid.row)


def backward_nhwc(codes, cellmat, spec, lsb, seeds, noise, max_code, g):
  """Gradients `(g_codes (N, H, W, Cin), g_cellmat, g_lsb)` of `forward_nhwc` for `g`."""
  grid = spec.grid
  x = _grid_slices(codes, spec)
  gx, gcell, g_lsb = ou_backward(x, cellmat, *_kernel_args(spec), lsb, max_code, seeds, noise, grid.lead, grid.size,
                                 chunk_size(grid.size, grid.lead),
                                 _nhwc_to_grid(g, grid.row, grid.size))
  g_codes = _grid_to_code_grad(gx, spec.slice_weights, grid.n, grid.h, grid.w, grid.row, grid.lead)
  return g_codes, gcell, np.float32(g_lsb)


@numba.njit(parallel=True, cache=True)
def ou_histogram(x, cellmat, rc, roff, nrows, ncols, lead, grid, chunk, h, w, row, bins):
  """Counts `(bins,)` of each noiseless OU column sum over the image positions (ADC calibration)."""
  num_slices = x.shape[0]
  chunks = (grid + chunk - 1) // chunk
  counts = np.zeros((chunks, bins), np.int64)
  for k in numba.prange(chunks):
    start = k * chunk
    length = min(chunk, grid - start)
    acc = np.empty(chunk, np.float32)
    zero = np.zeros(chunk, np.float32)
    wts = np.empty(-(-cellmat.shape[1] // 4) * 4, np.float32)
    for t in range(cellmat.shape[0]):
      for s in range(num_slices):
        for q in range(ncols[t]):
          _weights(cellmat, wts, t, q, nrows[t])
          _column_sums(x, zero, rc, roff, nrows[t], t, q, s, lead + start, wts, acc, length,
                       np.zeros(2, np.uint32), np.float32(0.0), 1, grid, start)
          for p in range(length):
            position = start + p
            if (position // row) % (h + 1) < h and position % row < w:
              counts[k, min(int(acc[p]), bins - 1)] += 1
  return counts.sum(axis=0)


def histogram_nhwc(codes, cellmat, spec, bins):
  """`ou_histogram` of NHWC codes."""
  grid = spec.grid
  x = _grid_slices(codes, spec)
  return ou_histogram(x, cellmat, spec.rc, spec.roff, spec.nrows, spec.ncols, grid.lead, grid.size,
                      chunk_size(grid.size, grid.lead), grid.h, grid.w, grid.row, bins)
