"""The planned `ou` path: the crossbar computes only the OUs of the layer's mapping.

`make_ou_plan(mask, hw)` turns a concrete mask into the layer's `OuPlan` (`rramjax.plan`: the
mapper's tiles), once per phase; `crossbar_conv(..., plan=plan)` then digitises exactly the partial
sums of those tiles. For the `pattern` scheme with `ou_rows >= 9` that is the same arithmetic as the
reference path (every kept kernel's sum over its pattern's taps, per weight column and input slice),
so the outputs are equal bit for bit (noise off); the `packed` scheme and smaller OUs change which
rows an OU sums, as the mapped hardware would (docs/MODEL.md section 5).

The computation runs on a padded *grid*: the input slices of a batch flattened into one row of `G`
positions per (slice, channel), each image row followed by a zero column and each image by a zero
row, so that tap `(dh, dw)` of every output position is the constant offset `dh*(W+1) + dw`. The
core (OU sums, read noise, ADC, shift-and-add; its straight-through backward) has three backends
with one contract:
  * `numba`: fused CPU kernels (`kernels/numba_cpu.py`), the default on a CPU;
  * `pallas`: a Pallas (Triton) GPU kernel (`kernels/pallas_gpu.py`), the default on a GPU, and
    tested on the CPU in Pallas's interpret mode;
  * `xla`: plain jax.numpy, the fallback elsewhere (and without numba).
Read noise follows `fast_normal`'s law with one counter per (tile, column, slice, position): the
same law as the reference path, other draws.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.hardware.config import OU_BACKENDS as BACKENDS
from rramjax.hardware.config import HardwareConfig
from rramjax.hardware.quant import adc_clip, adc_code, adc_vjp
from rramjax.plan import POSITIONS, OuPlan, make_plan

DATA_AXIS = "data"  # the batch axis of a data-parallel mesh (rramjax.train.parallel)


def make_ou_plan(mask, hw: HardwareConfig | None = None, *, scheme: str = "pattern",
                 filter_order: str = "given") -> OuPlan:
  """The OU plan of one layer for `crossbar_conv(..., plan=...)`: the mapper's tiles.

  Args:
    mask: concrete `(3, 3, Cin, Cout)` mask (nonzero = kept); not a traced array.
    hw: hardware config (OU shape, columns per weight); paper defaults when None.
    scheme: 'pattern' (the paper's kernel reordering) or 'packed' (column groups).
    filter_order: the packed scheme's filter order, 'given' or 'greedy'.

  Returns:
    The `rramjax.plan.OuPlan`.

  Raises:
    ConfigError: a traced mask, or an unknown scheme or filter order.
  """
  if isinstance(mask, jax.core.Tracer):
    raise ConfigError("make_ou_plan needs a concrete mask: build the plan outside jit, once per "
                      "phase (the masks are fixed while it is used).")
  return make_plan(np.asarray(mask), hw or HardwareConfig(), scheme, filter_order)


# The GPU that `lowering_for_gpu` lowers for (None: none; the platform decides).
_GPU_TARGET: str | None = None


@contextlib.contextmanager
def lowering_for_gpu(device_kind: str = "NVIDIA H100"):
  """Within it, the planned path is built as on a GPU, so that it lowers for CUDA on a machine
  without one: `jax.jit(f).trace(*args).lower(lowering_platforms=("cuda",))`.

  The default backend is 'pallas', its kernels compiled (not Pallas's interpret mode) and lowered
  by Triton for `device_kind` (jax >= 0.11 reads the target from an abstract mesh; jax 0.10 needs
  none). For checks of the GPU path on a CPU (tests, scripts/lower_for_gpu.py): Triton's
  compilation to PTX and a run still need the GPU. Make the arguments (keys too) before entering:
  operations run eagerly inside it have no device.
  """
  global _GPU_TARGET
  device = jax.sharding.AbstractDevice(device_kind=device_kind, num_cores=None, platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("gpu_target",), abstract_device=device)
  previous, _GPU_TARGET = _GPU_TARGET, device_kind
  try:
    with jax.sharding.use_abstract_mesh(mesh):
      yield
  finally:
    _GPU_TARGET = previous


def compiled_for_gpu() -> bool:
  """Whether GPU kernels are compiled here (on a GPU, or within `lowering_for_gpu`)."""
  return _GPU_TARGET is not None or jax.default_backend() == "gpu"


def default_backend() -> str:
  """'numba' on a CPU when numba imports, 'pallas' on a GPU (or within `lowering_for_gpu`), else
  'xla'."""
  platform = jax.default_backend()
  if platform == "gpu" or _GPU_TARGET is not None:
    return "pallas"
  if platform == "cpu":
    try:
      import numba  # pylint: disable=g-import-not-at-top,unused-import
      return "numba"
    except ImportError:
      return "xla"
  return "xla"


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
  """The padded position grid of a batch `(N, H, W)` (see the module doc)."""
  n: int
  h: int
  w: int

  @property
  def row(self) -> int:
    return self.w + 1

  @property
  def size(self) -> int:
    return self.n * (self.h + 1) * self.row

  @property
  def lead(self) -> int:
    return self.row + 1

  def offset(self, taps: np.ndarray) -> np.ndarray:
    return (taps // 3 - 1) * self.row + (taps % 3 - 1)


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
  """Static arguments of the planned core (hashed by identity)."""
  backend: str
  rc: np.ndarray       # (T, R) input channel of each tile row
  roff: np.ndarray     # (T, R) grid offset of each tile row
  nrows: np.ndarray    # (T,)
  cf: np.ndarray       # (T, C) filter of each tile column
  cj: np.ndarray       # (T, C) weight column j of each tile column
  ncols: np.ndarray    # (T,)
  place: np.ndarray    # (S, wc) int32 shift-and-add weights
  max_code: int
  cout: int
  grid: Grid
  noisy: bool          # read noise on (static: the GPU kernel leaves its code out otherwise)
  slices: int          # S, input slices
  dac_bits: int

  @property
  def slice_weights(self) -> np.ndarray:
    """Straight-through weights `d slice_s / d x = 2^(-s*dac_bits) / S` (as `input_slices`)."""
    return np.asarray([2.0 ** (-s * self.dac_bits) / self.slices for s in range(self.slices)],
                      np.float32)


def _spec(plan: OuPlan, hw: HardwareConfig, grid: Grid, backend: str, cell_place,
          noisy: bool = False) -> Spec:
  rows, cols, wc = plan.tile_rows, plan.tile_cols, plan.columns_per_weight
  taps = np.where(rows >= 0, rows % POSITIONS, 4)
  place = np.asarray([[2 ** (s * hw.dac_bits) * p for p in cell_place]
                      for s in range(hw.input_slices)], np.int32)
  return Spec(backend=backend, rc=np.where(rows >= 0, rows // POSITIONS, 0).astype(np.int64),
              roff=grid.offset(taps).astype(np.int64), nrows=plan.rows_per_tile.astype(np.int64),
              cf=np.where(cols >= 0, cols // wc, 0).astype(np.int64),
              cj=np.where(cols >= 0, cols % wc, 0).astype(np.int64),
              ncols=plan.cols_per_tile.astype(np.int64), place=place,
              max_code=hw.adc_max_code, cout=plan.cout, grid=grid, noisy=noisy,
              slices=hw.input_slices, dac_bits=hw.dac_bits)


# The three backends share one contract, on NHWC integer codes: forward
# `(spec, x_codes, cellmat, lsb, seeds, noise) -> (N, H, W, Cout) float32` (`lsb * sum of place *
# code`; numba returns the sum, times lsb in XLA) and backward `(..., g) -> (g_x_codes, g_cellmat, g_lsb)` (straight-through through the
# input slices as `input_slices` defines them).
def _code_dtype(spec: Spec):
  bits = spec.slices * spec.dac_bits
  return np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32


def _host(args):
  """The callback's arguments as numpy arrays, materialised BEFORE the kernels' lock is taken: on
  several devices an argument may still be computing on a device thread that is itself waiting
  in a callback, and holding the lock while waiting for it deadlocks."""
  return [np.asarray(a) for a in args]


def _numba_forward(spec: Spec, x_codes, cellmat, lsb, seeds, noise, max_code):
  from rramjax.hardware.kernels import numba_cpu  # pylint: disable=g-import-not-at-top

  def run(*args):
    x_codes, cellmat, lsb, seeds, noise, max_code = _host(args)
    # Under vmap ('expand_dims') every argument comes with the batch's leading axes (length 1
    # where unbatched): the entries go through one kernel call, sharing read-noise draws.
    batch = np.broadcast_shapes(x_codes.shape[:-4], cellmat.shape[:-3], lsb.shape,
                                seeds.shape[:-1], noise.shape, max_code.shape)

    def flat(a, tail):
      """`a` broadcast to the batch, its batch axes flattened: C-contiguous and read-only, as jax
      hands arrays over (numba compiles a kernel once per array layout and writability)."""
      a = np.ascontiguousarray(
          np.broadcast_to(a, batch + a.shape[a.ndim - tail:]).reshape(-1, *a.shape[a.ndim - tail:]))
      if a.flags.writeable:
        a.flags.writeable = False
      return a

    codes, lsb, seeds, noise, max_code = (flat(x_codes, 4), flat(lsb, 0), flat(seeds, 1),
                                          flat(noise, 0), flat(max_code, 0))
    with numba_cpu.LOCK:
      if math.prod(cellmat.shape[:-3]) == 1:  # one set of cells (the usual vmap: hardware values, seeds)
        out = numba_cpu.forward_nhwc(codes, cellmat.reshape(cellmat.shape[-3:]), spec, lsb, seeds,
                                     noise, max_code)
      else:
        cells = flat(cellmat, 3)
        out = np.concatenate([numba_cpu.forward_nhwc(codes[b:b + 1], cells[b], spec, lsb[b:b + 1],
                                                     seeds[b:b + 1], noise[b:b + 1],
                                                     max_code[b:b + 1]) for b in range(len(codes))])
    return out.reshape(batch + out.shape[1:])

  out = jax.ShapeDtypeStruct((*x_codes.shape[:3], spec.cout), jnp.float32)
  return jax.pure_callback(run, out, x_codes.astype(_code_dtype(spec)), cellmat, lsb, seeds, noise,
                           max_code, vmap_method="expand_dims")


def _numba_backward(spec: Spec, x_codes, cellmat, lsb, seeds, noise, max_code, g):
  from rramjax.hardware.kernels import numba_cpu  # pylint: disable=g-import-not-at-top

  def run(*args):
    x_codes, cellmat, lsb, seeds, noise, max_code, g = _host(args)
    with numba_cpu.LOCK:
      return numba_cpu.backward_nhwc(x_codes, cellmat, spec, np.float32(lsb),
                                     seeds.astype(np.uint32), np.float32(noise),
                                     np.float32(max_code), g.astype(np.float32))

  out = (jax.ShapeDtypeStruct(x_codes.shape, jnp.float32),
         jax.ShapeDtypeStruct(cellmat.shape, jnp.float32), jax.ShapeDtypeStruct((), jnp.float32))
  return jax.pure_callback(run, out, x_codes.astype(_code_dtype(spec)), cellmat, lsb, seeds, noise,
                           max_code, g, vmap_method="sequential")


def _grid_slices(spec: Spec, x_codes):
  """Input slices of NHWC codes on the padded grid, `(S, Cin, G + 2*lead)` (no gradient)."""
  codes = jax.lax.stop_gradient(x_codes).astype(jnp.int32)
  slices = jnp.stack([(codes >> (s * spec.dac_bits)) & (2**spec.dac_bits - 1)
                      for s in range(spec.slices)], axis=-1).astype(jnp.float32)
  return _to_grid(slices, spec.grid)


def _grid_backward(spec: Spec, backward, x_codes, cellmat, lsb, seeds, noise, max_code, g):
  """Runs a grid backward `(x_grid, ..., g_grid) -> (gx_grid, gcell, g_lsb)` on NHWC arrays."""
  grid = spec.grid
  g_grid = jnp.pad(jnp.transpose(g, (3, 0, 1, 2)), ((0, 0), (0, 0), (0, 1), (0, 1)))
  gx, gcell, g_lsb = backward(spec, _grid_slices(spec, x_codes), cellmat, lsb, seeds, noise,
                              max_code, g_grid.reshape(spec.cout, grid.size))
  gx = gx[:, :, grid.lead:grid.lead + grid.size].reshape(spec.slices, -1, grid.n, grid.h + 1, grid.row)
  gx = jnp.einsum("scnhw,s->nhwc", gx[:, :, :, :grid.h, :grid.w], spec.slice_weights)
  return gx, gcell, g_lsb


def _xla_rows(spec: Spec, x):
  """`(S, T, R, G)`: the input of tile row `(t, r)` at every grid position, a window of `G`
  positions of its channel. Gathered by the `T*R` window starts: a `(T, R, G)` index array would be
  a constant that XLA folds, for minutes, into each compiled step."""
  grid = spec.grid
  t, r = spec.rc.shape
  starts = jnp.asarray(np.stack([spec.rc, grid.lead + spec.roff], -1).reshape(t * r, 2), jnp.int32)
  window = lambda start: jax.lax.dynamic_slice(x, (0, start[0], start[1]),
                                               (x.shape[0], 1, grid.size))[:, 0]
  return jnp.moveaxis(jax.vmap(window)(starts), 0, 1).reshape(x.shape[0], t, r, grid.size)


def _noise_counters(shape) -> jax.Array:
  """uint32 read-noise counters `((t*C + q)*S + s)*G + position` of sums `(S, T, C, G)` (modulo
  2^32), computed in the step (iotas behind a barrier, which XLA does not fold into a constant)."""
  s, t, c, g = shape
  iota = lambda d: jax.lax.broadcasted_iota(jnp.uint32, shape, d)
  index = jax.lax.optimization_barrier(tuple(iota(d) for d in range(4)))
  return ((index[1] * np.uint32(c) + index[2]) * np.uint32(s) + index[0]) * np.uint32(g) + index[3]


def _xla_sums(spec: Spec, x, cellmat, seeds, noise, rows=None):
  """Analog sums `(S, T, C, G)` of every tile column (plain jax.numpy; memory ~ S*T*R*G); read
  noise unless `noise` is the number 0. `rows`: `_xla_rows(spec, x)` when the caller has it."""
  from rramjax.hardware.faults import fast_normal_counter  # pylint: disable=g-import-not-at-top
  rows = _xla_rows(spec, x) if rows is None else rows
  sums = jnp.einsum("strg,trc->stcg", rows, cellmat)
  if isinstance(noise, (int, float)) and noise == 0:
    return sums
  return sums + noise * fast_normal_counter(seeds, _noise_counters(sums.shape))


def _columns_valid(spec: Spec) -> np.ndarray:
  return np.arange(spec.cf.shape[1]) < spec.ncols[:, None]                # (T, C)


def _xla_grid_forward(spec: Spec, x, cellmat, lsb, seeds, noise, max_code):
  code = adc_clip(adc_code(_xla_sums(spec, x, cellmat, seeds, noise), lsb), max_code)
  place = spec.place[:, spec.cj] * _columns_valid(spec)                   # (S, T, C)
  contrib = code.astype(jnp.int32) * jnp.asarray(place, jnp.int32)[..., None]
  per_column = jnp.sum(contrib, axis=0).reshape(-1, spec.grid.size)      # (T*C, G)
  return jax.ops.segment_sum(per_column, spec.cf.ravel(), num_segments=spec.cout)


def _xla_grid_backward(spec: Spec, x, cellmat, lsb, seeds, noise, max_code, g):
  rows, scatter = jax.vjp(functools.partial(_xla_rows, spec), x)          # (S, T, R, G)
  code = adc_code(_xla_sums(spec, x, cellmat, seeds, noise, rows), lsb)
  place = jnp.asarray(spec.place[:, spec.cj] * _columns_valid(spec), jnp.float32)[..., None]
  gs, g_lsb = adc_vjp(code, max_code, g[spec.cf][None] * place)          # (S, T, C, G)
  gcell = jnp.einsum("stcg,strg->trc", gs, rows)
  (gx,) = scatter(jnp.einsum("stcg,trc->strg", gs, cellmat))
  return gx, gcell, g_lsb


def _pallas_grid_forward(spec: Spec, x, cellmat, lsb, seeds, noise, max_code):
  from rramjax.hardware.kernels import pallas_gpu  # pylint: disable=g-import-not-at-top
  return pallas_gpu.ou_forward(spec, x, cellmat, lsb, seeds, noise, max_code)


def _pallas_grid_backward(spec: Spec, x, cellmat, lsb, seeds, noise, max_code, g):
  from rramjax.hardware.kernels import pallas_gpu  # pylint: disable=g-import-not-at-top
  return pallas_gpu.ou_backward(spec, x, cellmat, lsb, seeds, noise, max_code, g)


_GRID = {"xla": (_xla_grid_forward, _xla_grid_backward),
         "pallas": (_pallas_grid_forward, _pallas_grid_backward)}


def _forward(spec: Spec, x_codes, cellmat, lsb, seeds, noise, max_code):
  if spec.backend == "numba":
    return _numba_forward(spec, x_codes, cellmat, lsb, seeds, noise, max_code) * lsb
  acc = _GRID[spec.backend][0](spec, _grid_slices(spec, x_codes), cellmat, lsb, seeds, noise,
                               max_code)
  return _from_grid(acc.astype(jnp.float32) * lsb, spec.grid)


def _backward(spec: Spec, x_codes, cellmat, lsb, seeds, noise, max_code, g):
  if spec.backend == "numba":
    return _numba_backward(spec, x_codes, cellmat, lsb, seeds, noise, max_code, g)
  return _grid_backward(spec, _GRID[spec.backend][1], x_codes, cellmat, lsb, seeds, noise,
                        max_code, g)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _core(spec: Spec, x_codes, cellmat, lsb, seeds, noise, max_code):
  """`lsb * sum(place * ADC code)` `(N, H, W, Cout)` float32: the crossbar before the offset."""
  return _forward(spec, x_codes, cellmat, lsb, seeds, noise, max_code)


def _core_fwd(spec, x, cellmat, lsb, seeds, noise, max_code):
  return _core(spec, x, cellmat, lsb, seeds, noise, max_code), (x, cellmat, lsb, seeds, noise,
                                                                max_code)


def _core_bwd(spec, res, g):
  x, cellmat, lsb, seeds, noise, max_code = res
  gx, gcell, g_lsb = _backward(spec, x, cellmat, lsb, seeds, noise, max_code, g)
  return (gx, gcell, jnp.reshape(g_lsb, jnp.shape(lsb)).astype(lsb.dtype), None,
          jnp.zeros_like(noise), jnp.zeros_like(max_code))


_core.defvjp(_core_fwd, _core_bwd)


def _to_grid(x_slices, grid: Grid):
  """`(N, H, W, Cin, S)` slices -> `(S, Cin, G + 2*lead)` on the padded grid."""
  xt = jnp.transpose(x_slices, (4, 3, 0, 1, 2))
  xt = jnp.pad(xt, ((0, 0), (0, 0), (0, 0), (0, 1), (0, 1)))
  xt = xt.reshape(xt.shape[0], xt.shape[1], grid.size)
  return jnp.pad(xt, ((0, 0), (0, 0), (grid.lead, grid.lead)))


def _from_grid(y, grid: Grid):
  """`(Cout, G)` on the grid -> `(N, H, W, Cout)`."""
  y = y.reshape(y.shape[0], grid.n, grid.h + 1, grid.row)[:, :, :grid.h, :grid.w]
  return jnp.transpose(y, (1, 2, 3, 0))


def _tile_cells(cells, plan: OuPlan):
  """`(T, R, C)` cell levels of every tile from HWIO cells `(3, 3, Cin, Cout, wc)`; 0 = no cell."""
  cin, cout, wc = plan.cin, plan.cout, plan.columns_per_weight
  flat = jnp.transpose(cells.reshape(POSITIONS, cin, cout * wc), (1, 0, 2)).reshape(-1, cout * wc)
  flat = jnp.pad(flat, ((0, 1), (0, 1)))
  rows = np.where(plan.tile_rows >= 0, plan.tile_rows, POSITIONS * cin)
  cols = np.where(plan.tile_cols >= 0, plan.tile_cols, cout * wc)
  return flat[rows[:, :, None], cols[:, None, :]]


def check_plan(plan: OuPlan, w_shape, hw: HardwareConfig) -> None:
  """ConfigError unless `plan` was made for a layer of this shape and column layout."""
  if not isinstance(plan, OuPlan):
    raise ConfigError(f"plan must come from make_ou_plan, got {type(plan).__name__}.")
  if (plan.cin, plan.cout) != tuple(w_shape[2:]) or plan.columns_per_weight != hw.columns_per_weight:
    raise ConfigError(
        f"The OU plan ({plan.cin}->{plan.cout} channels, {plan.columns_per_weight} columns per "
        f"weight) does not fit this layer ({w_shape[2]}->{w_shape[3]}, "
        f"{hw.columns_per_weight}): make it with make_ou_plan(mask, hw) for this layer.")


def planned_accumulate(x_codes, cells, cell_place, lsb, noise_key, plan: OuPlan,
                       hw: HardwareConfig, noise_lsb, backend: str | None = None, max_code=None):
  """`sum over the plan's OU columns of place * ADC(sum)` as `(N, H, W, Cout)` float32.

  The planned counterpart of the reference path's accumulation (before the digital offset).

  Args:
    x_codes: `(N, H, W, Cin)` unsigned integer input codes (float; the gradient passes straight
      through the DAC slices as `input_slices` defines it).
    cells: `(3, 3, Cin, Cout, wc)` cell levels (from `weight_cells`, possibly programmed).
    cell_place: the `wc` column weights (`+-2^(j*cell_bits)`).
    lsb: ADC step (float32 scalar, differentiable for a learned full scale).
    noise_key: key of the read noise, or None.
    plan: the layer's `OuPlan`.
    hw: hardware config.
    noise_lsb: read-noise std in LSB (a float, 0 = off; or a traced scalar).
    backend: 'numba', 'pallas' or 'xla'; None picks `default_backend()`.
    max_code: the ADC's top code as a traced scalar (default `hw.adc_levels - 1`): with the step
      (`lsb`) and the noise level, what a design-space sweep can vary in one compiled function.
  """
  backend = backend or default_backend()
  if backend not in BACKENDS:
    raise ConfigError(f"crossbar backend must be one of {BACKENDS}, got {backend!r}.")
  n, h, w = x_codes.shape[:3]
  grid = Grid(n, h, w)
  noisy = noise_key is not None and (isinstance(noise_lsb, jax.Array) or noise_lsb > 0)
  spec = _spec(plan, hw, grid, backend, cell_place, noisy)
  seeds = jax.random.bits(noise_key, (2,), jnp.uint32) if noisy else jnp.zeros((2,), jnp.uint32)
  noise = jax.lax.stop_gradient((jnp.float32(noise_lsb) * lsb) if noisy else jnp.zeros((), jnp.float32))
  cellmat = _tile_cells(cells, plan)
  max_code = jnp.asarray(spec.max_code if max_code is None else max_code, jnp.float32)
  devices = _data_devices()
  args = (x_codes, cellmat, lsb, seeds, noise, max_code)
  if devices == 1:
    return _core(spec, *args)
  _check_callbacks_on_mesh(backend)
  if n % devices:  # a batch that does not split: every device computes all of it
    return _replicated(functools.partial(_core, spec), args)
  # Under a data-parallel mesh: XLA cannot partition the kernel, so each device runs it on its
  # slice of the batch (its own read-noise draws: the device index enters the seeds).
  local = dataclasses.replace(spec, grid=Grid(n // devices, h, w))

  def per_device(x_codes, cellmat, lsb, seeds, noise, max_code):
    index = jax.lax.axis_index(DATA_AXIS).astype(jnp.uint32)
    return _core(local, x_codes, cellmat, lsb, seeds ^ (index * jnp.uint32(0x9E3779B9)), noise,
                 max_code)

  batch, whole = jax.sharding.PartitionSpec(DATA_AXIS), jax.sharding.PartitionSpec()
  return jax.shard_map(per_device, in_specs=(batch,) + (whole,) * 5, out_specs=batch,
                       check_vma=False)(*args)


def needs_one_device(backend: str | None) -> bool:
  """Whether the kernels of `backend` (None: `default_backend()`) must run on one device: the
  numba kernels are host callbacks, and jax runs a callback with its inputs placed on CPU device
  0, so on a mesh of several CPU devices a callback of one device waits for another that waits
  for it in a collective (a deadlock)."""
  return (backend or default_backend()) == "numba" and jax.default_backend() == "cpu"


def _check_callbacks_on_mesh(backend: str) -> None:
  """`needs_one_device` raised before tracing, instead of a hang."""
  if needs_one_device(backend):
    raise ConfigError("the planned crossbar's numba kernels cannot run on a mesh of several CPU "
                      "devices (jax's host callbacks deadlock there): run the 'ou' work on one "
                      "device (the Trainer does), or use crossbar.backend='xla'.")


def _replicated(fn, args):
  """`fn(*args)` on every device of the data mesh with whole inputs: host callbacks and custom
  kernels cannot be partitioned by XLA, so they may only run inside a `shard_map`."""
  whole = jax.sharding.PartitionSpec()
  return jax.shard_map(fn, in_specs=(whole,) * len(args), out_specs=whole, check_vma=False)(*args)


def _data_devices() -> int:
  """Devices on the `data` axis of the mesh being traced under (1 without one)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh is None or mesh.empty or DATA_AXIS not in mesh.axis_names:
    return 1
  return mesh.shape[DATA_AXIS]


def plan_max_sum(plan: OuPlan, hw: HardwareConfig) -> int:
  """The largest noiseless OU sum of a plan's tiles: its tallest tile's rows at full scale."""
  return int(plan.tile_rows.shape[1]) * hw.row_full_scale


def planned_histogram(x_codes, cells, plan: OuPlan, hw: HardwareConfig,
                      backend: str | None = None) -> jax.Array:
  """Counts of each noiseless OU sum of the plan's tiles (every column, slice and pixel).

  The planned counterpart of `crossbar.ou_sum_histogram`, for ADC calibration: the full scale
  follows the sums of the OUs the mapping really has (a packed OU sums more rows).

  Returns:
    int32 counts `(plan_max_sum(plan, hw) + 1,)`.
  """
  backend = backend or default_backend()
  n, h, w = x_codes.shape[:3]
  spec = _spec(plan, hw, Grid(n, h, w), backend, (1,) * plan.columns_per_weight)
  bins = plan_max_sum(plan, hw) + 1
  x_codes, cellmat = jax.lax.stop_gradient(x_codes), jax.lax.stop_gradient(_tile_cells(cells, plan))
  if backend == "numba":
    from rramjax.hardware.kernels import numba_cpu  # pylint: disable=g-import-not-at-top

    def run(*args):
      x_codes, cellmat = _host(args)
      with numba_cpu.LOCK:
        return numba_cpu.histogram_nhwc(x_codes, cellmat, spec, bins).astype(np.int32)

    def call(x_codes, cellmat):
      return jax.pure_callback(run, jax.ShapeDtypeStruct((bins,), jnp.int32),
                               x_codes.astype(_code_dtype(spec)), cellmat, vmap_method="sequential")

    args = (x_codes, cellmat)
    if _data_devices() == 1:
      return call(*args)
    _check_callbacks_on_mesh(backend)
    return _replicated(call, args)
  sums = _xla_sums(spec, _grid_slices(spec, x_codes), cellmat, jnp.zeros((2,), jnp.uint32), 0.0)
  grid = spec.grid
  position = np.arange(grid.size)
  image = ((position // grid.row) % (grid.h + 1) < grid.h) & (position % grid.row < grid.w)
  # Behind a barrier: XLA would fold the (S, T, C, G) weights into a constant of that size.
  valid, image = jax.lax.optimization_barrier((jnp.asarray(_columns_valid(spec)), jnp.asarray(image)))
  weight = jnp.broadcast_to(valid[None, :, :, None] & image, sums.shape).astype(jnp.int32)
  return jnp.bincount(jnp.clip(sums, 0, bins - 1).astype(jnp.int32).ravel(), weight.ravel(),
                      length=bins)
