"""Per-layer pattern library extraction from trained weights (eager, run once per layer).

Two methods, both over the *surviving* kernels of a layer (nonzero ones, or those in a given
kernel mask):

* `extract_library_patdnn`: PatDNN's counting. Each kernel votes for the mask of its top-k magnitude
  positions; the K most frequent masks form the library.
* `extract_library_greedy`: the library that keeps the most squared weight. With `e_n = |W_n|^2`
  (a 9-vector per kernel) and projection `p*_n = argmax_{p in L} e_n . p` (as
  `project_to_library` does), it maximises

      F(L) = sum_n (e_n . p*_n  -  lambda * |p*_n|)

  by greedy addition from the candidates (the top-k masks of every kernel for every k in `sizes`),
  then 1-swap local search started from the better of the greedy library and PatDNN's library.

  **Size rule [choice]**: bigger patterns always keep more weight, so mixed sizes need a budget.
  `sizes` an int k fixes the size (lambda is irrelevant, every pattern has k positions: the fair
  comparison with PatDNN, and the rule to use when the sparsity target fixes k per layer). `sizes`
  an iterable allows mixed sizes and charges `lambda = size_penalty * mean(e)` per kept position,
  i.e. a position earns its place only if it holds more than `size_penalty` times the layer's mean
  squared weight per position (scale-free; the default 1.0 keeps about 3 of 9 positions of a
  Gaussian kernel). Because the penalty is evaluated at the projection's own choice `p*_n`, the
  objective is exactly what `project_to_library` will do with the library.

Libraries are extracted once, from pretrained weights, and stay fixed through ADMM and fine-tuning.

References:
  Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (pattern library by frequency, 4-entry patterns).
"""

from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from rramjax.errors import ConfigError
from rramjax.patterns.codes import (KERNEL_POSITIONS, MAX_CODE, check_conv_kernel, sum_filter_groups,
                                    validate_library)
from rramjax.patterns.projection import check_granularity
from rramjax.plan import DEFAULT_GROUP_SIZE, codes_to_masks, masks_to_codes

# Kernels scored per block: bounds the (kernels x candidates) score matrix to ~32 MB.
_CHUNK = 16384

# PatDNN's default library [choice]: 4-entry patterns that all keep the centre (position 4), the
# shapes derived from the Enhanced Laplacian of Gaussian: the four "T"s (centre plus three of its four
# edge neighbours) and the four 2x2 squares that contain the centre. Rows kh, columns kw.
_PATDNN_PICTURES = (
    (".#.", "###", "..."), (".#.", ".##", ".#."), ("...", "###", ".#."), (".#.", "##.", ".#."),
    ("##.", "##.", "..."), (".##", ".##", "..."), ("...", "##.", "##."), ("...", ".##", ".##"),
)


def _picture_code(rows) -> int:
  return int(masks_to_codes(np.array([[char == "#" for char in row] for row in rows]).reshape(-1)))


def default_patdnn_library() -> tuple[int, ...]:
  """PatDNN's default library: 8 four-entry patterns with the centre kept, shared by all layers.

  The set is the 4 "T" shapes (centre + 3 of the 4 edge neighbours) and the 4 2x2 squares holding
  the centre [choice: PatDNN draws its 4-entry patterns around the kept centre, from the ELoG
  filter; this is the connected set of 8 we use].

  Returns:
    8 pattern codes (bit 3*kh+kw set = kept); `pattern_picture` draws them.

  References:
    Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138, section 3.
  """
  return tuple(_picture_code(rows) for rows in _PATDNN_PICTURES)


def _check_count(num_patterns) -> int:
  if isinstance(num_patterns, bool) or not isinstance(num_patterns, (int, np.integer)):
    raise ConfigError(f"num_patterns must be an integer, got {num_patterns!r}.")
  if not 1 <= num_patterns <= MAX_CODE:
    raise ConfigError(f"num_patterns must lie in 1..{MAX_CODE} (there are {MAX_CODE} nonempty "
                      f"3x3 patterns), got {num_patterns}.")
  return int(num_patterns)


def _check_sizes(sizes) -> tuple[int, ...]:
  sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
  if not sizes or any(isinstance(k, bool) or not isinstance(k, (int, np.integer))
                      or not 1 <= k <= KERNEL_POSITIONS for k in sizes):
    raise ConfigError(f"Pattern sizes must be integers in 1..{KERNEL_POSITIONS}, got {sizes!r}.")
  return tuple(sorted({int(k) for k in sizes}))


def surviving_energy(w, kernel_mask=None, granularity: str = "kernel",
                     group_size: int = DEFAULT_GROUP_SIZE) -> np.ndarray:
  """Squared weights `|W|^2` of the surviving kernels (or OU groups) as rows `(N, 9)` (column i = 3*kh+kw).

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)`.
    kernel_mask: optional `(Cin, Cout)` bool, the kernels that survive connectivity pruning;
      default: every kernel that is not all-zero.
    granularity: 'kernel' (one row per surviving kernel) or 'ou_group' (one row per (channel,
      group of `group_size` consecutive filters) with a surviving kernel: the sum of its surviving
      kernels' rows, what the group projection scores patterns by).
    group_size: filters per group for 'ou_group'.

  Returns:
    float64 `(N, 9)`. Raises ConfigError when no kernel survives.
  """
  check_conv_kernel(w)
  check_granularity(granularity, group_size)
  w = np.asarray(w, np.float64)
  rows = np.transpose(w, (2, 3, 0, 1)) ** 2                       # (Cin, Cout, 3, 3)
  rows = rows.reshape(*w.shape[2:], KERNEL_POSITIONS)
  if kernel_mask is None:
    alive = rows.sum(axis=-1) > 0
  else:
    alive = np.asarray(kernel_mask) != 0
    if alive.shape != w.shape[2:]:
      raise ConfigError(f"kernel_mask must have shape (Cin, Cout) = {w.shape[2:]}, "
                        f"got {alive.shape}.")
  if not alive.any():
    raise ConfigError("No surviving kernel to extract a pattern library from (all kernels are "
                      "zero or masked out).")
  if granularity == "ou_group":
    rows = np.moveaxis(sum_filter_groups(np.moveaxis(rows * alive[..., None], 1, -1), group_size), -1, 1)
    alive = sum_filter_groups(alive.astype(np.int64), group_size) > 0
  return rows[alive]


def top_k_codes(energy: np.ndarray, k: int) -> np.ndarray:
  """Code of each kernel's top-k magnitude positions; ties go to the lower position index."""
  kept = np.zeros(energy.shape, bool)
  np.put_along_axis(kept, np.argsort(-energy, axis=1, kind="stable")[:, :k], True, axis=1)
  return masks_to_codes(kept)


def extract_library_patdnn(w, num_patterns: int, k: int = 4, kernel_mask=None, granularity: str = "kernel",
                           group_size: int = DEFAULT_GROUP_SIZE) -> tuple[int, ...]:
  """PatDNN library: the K most frequent top-k magnitude masks of the surviving kernels.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)` (pretrained).
    num_patterns: K, the library size (1..511).
    k: positions per pattern (1..9), 4 in PatDNN.
    kernel_mask: optional `(Cin, Cout)` surviving kernels (default: the nonzero ones).
    granularity, group_size: 'ou_group' counts one vote per OU group, the top-k of its summed
      squared weights (see `surviving_energy`).

  Returns:
    Up to K codes, most frequent first (ties: lower code first); fewer when fewer distinct masks
    occur.

  References:
    Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138, section 4 (pattern set generation).
  """
  num_patterns = _check_count(num_patterns)
  (k,) = _check_sizes(k)
  energy = surviving_energy(w, kernel_mask, granularity, group_size)
  codes, counts = np.unique(top_k_codes(energy, k), return_counts=True)
  order = np.lexsort((codes, -counts))
  return tuple(int(c) for c in codes[order][:num_patterns])


def _candidates(energy: np.ndarray, sizes: tuple[int, ...], max_candidates: int) -> np.ndarray:
  """The `max_candidates` most frequent top-k masks over k in `sizes` (ties: lower code first)."""
  codes, counts = np.unique(np.concatenate([top_k_codes(energy, k) for k in sizes]),
                            return_counts=True)
  return codes[np.lexsort((codes, -counts))][:max_candidates]


def _masks(codes) -> np.ndarray:
  return codes_to_masks(np.asarray(codes, np.int64)).astype(np.float64)


def library_objective(energy: np.ndarray, library, size_penalty: float = 0.0) -> float:
  """F(L) = sum_n (e_n . p*_n - lambda |p*_n|), p*_n the projection's choice (first on ties).

  Args:
    energy: `(N, 9)` squared weights of the kernels (see `surviving_energy`).
    library: pattern codes.
    size_penalty: lambda in units of the mean of `energy` (0: plain kept squared weight).

  Returns:
    F as a Python float.
  """
  energy = np.asarray(energy, np.float64)
  return _objective(energy, size_penalty * energy.mean(), list(validate_library(library)))


class _Assignment:
  """Each kernel's current projection score s_n and penalised value v_n under a library."""

  def __init__(self, energy, lam, library):
    self.energy, self.lam = energy, lam
    masks = _masks(library)
    scores = energy @ masks.T
    pick = np.argmax(scores, axis=1)
    self.score = scores[np.arange(len(energy)), pick]
    self.value = self.score - lam * masks.sum(1)[pick]

  def gains(self, cand_masks: np.ndarray) -> np.ndarray:
    """Change of F for appending each candidate: a kernel moves only where it scores strictly more.

    float32 in jitted blocks (the N x M scores are the cost); exact float64 comparisons decide
    between whole libraries (`_objective`).
    """
    n, m = len(self.energy), len(cand_masks)
    chunk = min(_CHUNK, _pow2(n))
    rows = -(-n // chunk) * chunk
    energy = _pad(self.energy, rows, 0.0)
    score = _pad(self.score, rows, np.inf)  # padded kernels never move
    value = _pad(self.value, rows, 0.0)
    masks = _pad(cand_masks, _pow2(m), 0.0)
    gains = sum(np.asarray(_block_gains(energy[i:i + chunk], score[i:i + chunk],
                                        value[i:i + chunk], masks, self.lam), np.float64)
                for i in range(0, rows, chunk))
    return gains[:m]


def _pow2(n: int) -> int:
  """Next power of two >= max(n, 64): few block shapes, so few compilations."""
  return max(64, 1 << (int(n) - 1).bit_length())


def _pad(array: np.ndarray, rows: int, fill: float) -> np.ndarray:
  pad = [(0, rows - len(array))] + [(0, 0)] * (array.ndim - 1)
  return np.pad(array.astype(np.float32), pad, constant_values=fill)


@jax.jit
def _block_gains(energy, score, value, cand_masks, lam):
  scores = energy @ cand_masks.T
  moved = scores > score[:, None]
  penalised = scores - lam * jnp.sum(cand_masks, axis=1) - value[:, None]
  return jnp.sum(jnp.where(moved, penalised, 0.0), axis=0)


def _greedy(energy, lam, candidates, num_patterns) -> list[int]:
  cand_masks = _masks(candidates)
  # Alone, a pattern serves every kernel: F({p}) = (sum_n e_n) . p - N lambda |p|.
  alone = cand_masks @ energy.sum(0) - len(energy) * lam * cand_masks.sum(1)
  library = [int(candidates[int(np.argmax(alone))])]
  while len(library) < min(num_patterns, len(candidates)):
    gains = _Assignment(energy, lam, library).gains(cand_masks)
    gains[np.isin(candidates, library)] = -np.inf
    if gains.max() <= 0:  # no candidate helps any kernel: a bigger library would only cost area
      break
    library.append(int(candidates[int(np.argmax(gains))]))
  return library


def _objective(energy, lam, library) -> float:
  return float(_Assignment(energy, lam, library).value.sum())


def _swap_pass(energy, lam, candidates, library) -> list[int]:
  """One round of 1-swaps: replace a pattern by the candidate that raises F the most, if any."""
  cand_masks = _masks(candidates)
  best = _objective(energy, lam, library)
  for slot in range(len(library)):
    rest = library[:slot] + library[slot + 1:]
    if rest:
      assignment = _Assignment(energy, lam, rest)
      trial = assignment.value.sum() + assignment.gains(cand_masks)
    else:
      trial = cand_masks @ energy.sum(0) - len(energy) * lam * cand_masks.sum(1)
    trial[np.isin(candidates, library)] = -np.inf
    if np.isneginf(trial).all():  # every candidate is already in the library
      break
    swapped = rest + [int(candidates[int(np.argmax(trial))])]
    exact = _objective(energy, lam, swapped)  # the float32 estimate proposes, float64 decides
    if exact > best + 1e-12 * abs(best):
      library, best = swapped, exact
  return library


def extract_library_greedy(w, num_patterns: int, kernel_mask=None,
                           sizes: int | Iterable[int] = range(1, KERNEL_POSITIONS + 1),
                           size_penalty: float = 1.0, swap_passes: int = 2,
                           max_candidates: int = 128, granularity: str = "kernel",
                           group_size: int = DEFAULT_GROUP_SIZE) -> tuple[int, ...]:
  """Library keeping the most squared weight: greedy addition, then 1-swap local search.

  Maximises F(L) = sum_n (|W_n|^2 . p*_n - lambda |p*_n|) over the surviving kernels, with
  p*_n the pattern `project_to_library` gives kernel n (see the module docstring for the size rule).
  F is a facility-location objective (submodular for a fixed size), so the greedy start is within
  1 - 1/e of the best; the local search starts from the better of it and PatDNN's library of each
  size in `sizes`, so the result never keeps less than PatDNN's on the same weights.

  Args:
    w: HWIO weights `(3, 3, Cin, Cout)` (pretrained).
    num_patterns: K, the largest library size (1..511).
    kernel_mask: optional `(Cin, Cout)` surviving kernels (default: the nonzero ones).
    sizes: an int k (every pattern has k positions) or the allowed sizes (1..9).
    size_penalty: lambda per kept position in units of the layer's mean squared weight per
      position; used only when `sizes` allows several sizes.
    swap_passes: rounds of local search (0: greedy only, besides the PatDNN comparison).
    max_candidates: candidates scored, the most frequent top-k masks (a mask that is hardly any
      kernel's top-k is rarely worth a library slot; the cost is kernels x candidates per step).
    granularity, group_size: 'ou_group' scores OU groups instead of kernels: `n` runs over the
      (channel, group of `group_size` filters) units and `|W_n|^2` is a group's summed squared
      weights, as the group projection chooses (see `surviving_energy`).

  Returns:
    Up to K codes (fewer when no further pattern raises F).

  References:
    Niu et al., "PatDNN", ASPLOS 2020, arXiv:2001.00138 (the library this improves on).
  """
  num_patterns = _check_count(num_patterns)
  sizes = _check_sizes(sizes)
  if not np.isfinite(size_penalty) or size_penalty < 0:
    raise ConfigError(f"size_penalty must be a finite number >= 0, got {size_penalty!r}.")
  energy = surviving_energy(w, kernel_mask, granularity, group_size)
  lam = size_penalty * energy.mean() if len(sizes) > 1 else 0.0
  if isinstance(max_candidates, bool) or not isinstance(max_candidates, (int, np.integer)) \
      or max_candidates < 1:
    raise ConfigError(f"max_candidates must be an integer >= 1, got {max_candidates!r}.")
  candidates = _candidates(energy, sizes, max_candidates)
  starts = [_greedy(energy, lam, candidates, num_patterns)]
  starts += [list(extract_library_patdnn(w, num_patterns, k, kernel_mask, granularity, group_size))
             for k in sizes]
  library = max(starts, key=lambda lib: _objective(energy, lam, lib))
  for _ in range(swap_passes):
    improved = _swap_pass(energy, lam, candidates, library)
    if improved == library:
      break
    library = improved
  return tuple(library)
