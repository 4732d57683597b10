"""Data sets: Fashion-MNIST from IDX files, the paper's sets through tfds, and the input pipeline."""

from __future__ import annotations

from rramjax.data import fashion_mnist, tfds_sets
from rramjax.data.pipeline import ArrayDataset, DeviceData, batches, epoch_order
from rramjax.errors import DataError

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagenet")


def load_dataset(name: str, split: str, *, data_dir=None, tfds_data_dir=None) -> ArrayDataset:
  """Loads one split of a named data set into memory (ImageNet is too large: use tfds_sets)."""
  if name == "fashion_mnist":
    images, labels = fashion_mnist.load_split(split, data_dir)
    return ArrayDataset(name, images, labels, fashion_mnist.NUM_CLASSES)
  if name in ("cifar10", "cifar100"):
    images, labels = tfds_sets.load(name, split, tfds_data_dir)
    return ArrayDataset(name, images, labels, tfds_sets.NUM_CLASSES[name])
  if name == "imagenet":
    raise DataError("ImageNet does not fit in memory here; stream it with "
                    "rramjax.data.tfds_sets.load('imagenet', split, as_numpy_arrays=False).")
  raise DataError(f"Unknown data set {name!r}; use one of {DATASETS}.")


__all__ = ["ArrayDataset", "DeviceData", "DataError", "batches", "epoch_order", "load_dataset",
           "DATASETS"]
