"""Seeded shuffling, batching, augmentation and normalisation; an on-device option for small sets.

Batch order is a pure function of (seed, epoch), so a run resumed from an epoch checkpoint sees
exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from rramjax.errors import DataError

# Per-channel statistics, used only when normalize='standard'.
_STATS = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclasses.dataclass
class ArrayDataset:
  """A data set split held in memory as uint8 NHWC images and int32 labels."""

  name: str
  images: np.ndarray
  labels: np.ndarray
  num_classes: int

  def __len__(self):
    return len(self.labels)

  def take(self, limit: int | None) -> "ArrayDataset":
    if limit is None or limit >= len(self):
      return self
    return dataclasses.replace(self, images=self.images[:limit], labels=self.labels[:limit])


def pad_images(images: np.ndarray, size: int | None) -> np.ndarray:
  """Zero-pads HxW images symmetrically to size x size (28x28 -> 32x32 for the 32x32 VGG16)."""
  if size is None or images.shape[1] == size:
    return images
  extra = size - images.shape[1]
  if extra < 0 or images.shape[1] != images.shape[2]:
    raise DataError(f"Cannot pad {images.shape[1:3]} images to {size}x{size}.")
  lo = extra // 2
  return np.pad(images, ((0, 0), (lo, extra - lo), (lo, extra - lo), (0, 0)))


def normalize(images: np.ndarray, dataset: str, mode: str) -> np.ndarray:
  """uint8 -> float32: 'unit' maps to [0, 1] (what the crossbar's first-layer DAC expects)."""
  x = images.astype(np.float32) / 255.0
  if mode == "standard":
    mean, std = _STATS[dataset]
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
  return x


def _crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
  rows = dy[:, None] + np.arange(h)[None, :]
  cols = dx[:, None] + np.arange(w)[None, :]
  out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
  flip = rng.random(n) < 0.5
  out[flip] = out[flip, :, ::-1]
  return out


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The permutation of epoch `epoch`: a pure function of (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def batches(ds: ArrayDataset, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
            augment: str = "none", pad_to: int | None = None, norm: str = "unit",
            drop_remainder: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (float32 images NHWC, int32 labels) batches of one epoch.

  Args:
    ds: the data set.
    batch_size: examples per batch.
    seed, epoch: fix the order and the augmentation of this epoch.
    shuffle: permute the examples (training) or keep their order (evaluation).
    augment: 'none' or 'crop_flip' (4-pixel reflect-pad random crop and horizontal flip).
    pad_to: zero-pad images to this side (None: keep).
    norm: 'unit' ([0, 1]) or 'standard' (per-channel mean/std).
    drop_remainder: drop the last partial batch (training: static shapes, one compile).
  """
  n = len(ds)
  order = epoch_order(seed, epoch, n) if shuffle else np.arange(n)
  rng = np.random.default_rng([seed, epoch, 1])
  stop = n - n % batch_size if drop_remainder else n
  for start in range(0, stop, batch_size):
    idx = order[start:start + batch_size]
    images = ds.images[idx]
    if augment == "crop_flip":
      images = _crop_flip(images, rng)
    yield normalize(pad_images(images, pad_to), ds.name, norm), ds.labels[idx]


class DeviceData:
  """A whole small split kept on the accelerator, already normalised and padded.

  Each training batch is gathered on the device from the epoch's permutation, so a GPU epoch
  does no host-to-device copies. Augmentation is not applied on this path.
  """

  def __init__(self, ds: ArrayDataset, *, pad_to=None, norm="unit"):
    import jax  # pylint: disable=g-import-not-at-top
    self._jax = jax
    self.images = jax.device_put(normalize(pad_images(ds.images, pad_to), ds.name, norm))
    self.labels = jax.device_put(ds.labels)
    self.n = len(ds)

  def batches(self, batch_size: int, *, seed: int, epoch: int, shuffle: bool):
    order = epoch_order(seed, epoch, self.n) if shuffle else np.arange(self.n)
    order = self._jax.device_put(order[: self.n - self.n % batch_size].reshape(-1, batch_size))
    for i in range(order.shape[0]):
      yield self.images[order[i]], self.labels[order[i]]
