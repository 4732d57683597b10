"""Data sets: Fashion-MNIST from IDX files, CIFAR through tfds, and the input pipeline."""

from __future__ import annotations

from typing import NamedTuple

from rramjax.data import fashion_mnist, tfds_sets
from rramjax.data.pipeline import ArrayDataset, DeviceData, batches, epoch_order
from rramjax.errors import DataError

# Each data set by name, with its native image side (before `data.pad_to`).
IMAGE_SIDES = {"fashion_mnist": 28, "cifar10": 32, "cifar100": 32}
DATASETS = tuple(IMAGE_SIDES)


class Splits(NamedTuple):
  """A data set's training and test splits, held in memory (what a `Trainer` trains on)."""

  train: ArrayDataset
  test: ArrayDataset


def load_dataset(name: str, split: str, *, data_dir=None, tfds_data_dir=None) -> ArrayDataset:
  """Loads one split ('train' or 'test') of a named data set into memory."""
  if name == "fashion_mnist":
    images, labels = fashion_mnist.load_split(split, data_dir)
    return ArrayDataset(name, images, labels, fashion_mnist.NUM_CLASSES)
  if name in tfds_sets.TFDS_NAMES:
    images, labels = tfds_sets.load(name, split, tfds_data_dir)
    return ArrayDataset(name, images, labels, tfds_sets.NUM_CLASSES[name])
  raise DataError(f"Unknown data set {name!r}; use one of {DATASETS}.")


def load_splits(name: str, *, data_dir=None, tfds_data_dir=None) -> Splits:
  """Both splits of a named data set (see `load_dataset`)."""
  return Splits(*(load_dataset(name, split, data_dir=data_dir, tfds_data_dir=tfds_data_dir)
                  for split in ("train", "test")))


__all__ = ["ArrayDataset", "DeviceData", "DataError", "Splits", "batches", "epoch_order",
           "load_dataset", "load_splits", "DATASETS"]
