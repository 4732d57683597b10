"""Which filters share a column group: an order of a layer's filters for OU-group pattern pruning.

With `granularity="ou_group"` the filters of one column group (`group_size` consecutive filters)
share each input channel's pattern, so the projection keeps, per (channel, group),

    max_k sum_{f in group} |w_(c,f)|^2 . P[k]

of the group's squared weight. Which filters stand together is free: permuting a layer's filters
(with its batch norm, and the next layer's input channels) leaves the network's function unchanged
(`rramjax.models.vgg.permute_filters`). `group_order` chooses an order whose groups keep more
squared weight than the given one: filters whose kernels prefer the same patterns at the same
channels go together, so the shared choice costs them less.

Method (numpy, deterministic): a greedy construction (each group is seeded with the remaining
filter of most squared weight and grown by the filter that adds the least lost weight), then
passes of pairwise swaps between groups, each filter in turn exchanged with the partner in another
group that raises the kept weight most, until a pass improves nothing or `passes` are done. The
given order is returned where it keeps at least as much. Connectivity pruning (removing whole
(channel, group) pairs) is left out of the objective.
"""

from __future__ import annotations

import numpy as np

from rramjax.patterns.codes import KERNEL_POSITIONS, check_conv_kernel
from rramjax.patterns.projection import as_library_matrix


def _pattern_energy(w, library) -> np.ndarray:
  """`(Cin, Cout, K)` squared weight of each kernel inside each library pattern."""
  patterns = np.asarray(as_library_matrix(library), np.float64)              # (K, 9)
  square = np.square(np.asarray(w, np.float64)).reshape((KERNEL_POSITIONS,) + np.shape(w)[2:])
  return np.einsum("tcf,kt->cfk", square, patterns)


def _kept(sums) -> np.ndarray:
  """Kept squared weight of group sums `(..., Cin, K)`: the best pattern per channel, summed."""
  return sums.max(axis=-1).sum(axis=-1)


def grouped_kept_energy(w, library, group_size: int, order=None) -> float:
  """Squared weight the OU-group projection keeps when filters `order` (default: as given) are
  cut into groups of `group_size` consecutive filters (the last group may be smaller).

  Example:
    >>> import numpy as np
    >>> w = np.zeros((3, 3, 1, 4), np.float32)
    >>> w[0, 0, 0, [0, 2]] = 1.0   # filters 0 and 2 use the top-left tap
    >>> w[2, 2, 0, [1, 3]] = 1.0   # filters 1 and 3 the bottom-right one
    >>> library = [1, 256]         # the two one-tap patterns
    >>> grouped_kept_energy(w, library, 2), grouped_kept_energy(w, library, 2, [0, 2, 1, 3])
    (2.0, 4.0)
  """
  return _grouped_kept(_pattern_energy(w, library), group_size, order)


def _grouped_kept(energy, group_size: int, order=None) -> float:
  cout = energy.shape[1]
  order = np.arange(cout) if order is None else np.asarray(order)
  total = 0.0
  for start in range(0, cout, group_size):
    total += float(_kept(energy[:, order[start:start + group_size], :].sum(axis=1)))
  return total


def group_order(w, library, group_size: int, *, passes: int = 8) -> np.ndarray:
  """An order of the `Cout` filters of HWIO `w` for groups of `group_size` consecutive filters
  that keeps at least as much squared weight under the OU-group projection as the given order.

  Args:
    w: `(3, 3, Cin, Cout)` kernel.
    library: the layer's patterns (codes or a `(K, 9)` 0/1 matrix).
    group_size: filters per column group (>= 1; 1 returns the given order).
    passes: at most this many passes of pairwise swaps after the greedy construction.

  Returns:
    `(Cout,)` int64 permutation: position `i` of the new layer holds filter `order[i]`.
  """
  check_conv_kernel(w)
  cout = int(np.shape(w)[3])
  identity = np.arange(cout)
  if group_size <= 1 or cout <= group_size:
    return identity
  energy = _pattern_energy(w, library)                              # (Cin, Cout, K)
  order = _greedy(energy, group_size)
  order = _swap_passes(energy, order, group_size, passes)
  if _grouped_kept(energy, group_size, order) <= _grouped_kept(energy, group_size):
    return identity
  return order


def _greedy(energy, group_size: int) -> np.ndarray:
  cout = energy.shape[1]
  # A filter's own squared weight inside patterns: what it keeps in a group of its own.
  weight = _kept(energy.transpose(1, 0, 2))                         # (Cout,)
  remaining = np.ones(cout, bool)
  order = []
  while remaining.any():
    free = np.flatnonzero(remaining)
    seed = free[np.argmax(weight[free])]
    group, sums = [seed], energy[:, seed, :].copy()
    remaining[seed] = False
    while len(group) < group_size and remaining.any():
      free = np.flatnonzero(remaining)
      kept_after = _kept(sums[None] + energy[:, free, :].transpose(1, 0, 2))
      lost = weight[free] - (kept_after - _kept(sums))
      pick = free[np.argmin(lost)]
      group.append(pick)
      sums += energy[:, pick, :]
      remaining[pick] = False
    order.extend(group)
  return np.asarray(order, np.int64)


def _swap_passes(energy, order, group_size: int, passes: int) -> np.ndarray:
  cout = energy.shape[1]
  order = order.copy()
  slot_group = np.arange(cout) // group_size                        # group of each position
  per_filter = energy[:, order, :].transpose(1, 0, 2)               # (Cout, Cin, K), by position
  groups = -(-cout // group_size)
  sums = np.stack([per_filter[slot_group == g].sum(axis=0) for g in range(groups)])  # (G, Cin, K)
  kept = _kept(sums)                                                # (G,)
  for _ in range(passes):
    improved = False
    for i in range(cout):
      a = slot_group[i]
      others = np.flatnonzero(slot_group != a)
      if not len(others):
        continue
      b = slot_group[others]
      new_a = _kept(sums[a][None] - per_filter[i][None] + per_filter[others])
      new_b = _kept(sums[b] - per_filter[others] + per_filter[i][None])
      gain = new_a + new_b - kept[a] - kept[b]
      best = int(np.argmax(gain))
      if gain[best] <= 1e-9 * max(float(kept.sum()), 1e-30):
        continue
      j, gb = int(others[best]), int(b[best])
      sums[a] += per_filter[j] - per_filter[i]
      sums[gb] += per_filter[i] - per_filter[j]
      kept[a], kept[gb] = _kept(sums[a]), _kept(sums[gb])
      per_filter[[i, j]] = per_filter[[j, i]]
      order[[i, j]] = order[[j, i]]
      improved = True
    if not improved:
      break
  return order
