"""The paper's data sets (CIFAR-10, CIFAR-100, ImageNet) through tensorflow-datasets.

Only prepared data is read: `download=False, try_gcs=False`, so a missing data set fails in well
under a second with instructions instead of retrying the network for minutes.
"""

from __future__ import annotations

import numpy as np

from rramjax.errors import DataError

TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet2012"}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
_SPLITS = {"train": "train", "test": "test"}
_IMAGENET_SPLITS = {"train": "train", "test": "validation"}


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError("The CIFAR and ImageNet data sets need tensorflow-datasets: "
                    "`pip install 'rramjax[tfds]'`.") from e
  return tfds


def _how_to_prepare(name: str, data_dir) -> str:
  where = data_dir or "~/tensorflow_datasets (or $TFDS_DATA_DIR)"
  if name == "imagenet":
    return (f"ImageNet must be prepared by hand: put ILSVRC2012_img_train.tar and "
            f"ILSVRC2012_img_val.tar in {where}/downloads/manual and run "
            f"`tfds build imagenet2012 --data_dir {where}` on a machine with the files.")
  return (f"Prepare it on a machine with network: `tfds build {TFDS_NAMES[name]} --data_dir DIR`, "
          f"then copy DIR here and set the config key data.tfds_data_dir (now {where}).")


def load(name: str, split: str, data_dir=None, as_numpy_arrays: bool = True):
  """Loads a prepared tfds data set split.

  Args:
    name: 'cifar10', 'cifar100' or 'imagenet'.
    split: 'train' or 'test' (ImageNet's 'test' is its validation split).
    data_dir: tfds data folder (None: tfds' default).
    as_numpy_arrays: True to return (images uint8 NHWC, labels int32) held in memory (CIFAR);
      False to return the `tf.data.Dataset` of (image, label) for streaming (ImageNet).

  Returns:
    (images, labels) arrays, or a tf.data.Dataset.
  """
  if name not in TFDS_NAMES:
    raise DataError(f"Unknown tfds data set {name!r}; use one of {sorted(TFDS_NAMES)}.")
  tfds = _import_tfds()
  splits = _IMAGENET_SPLITS if name == "imagenet" else _SPLITS
  try:
    ds = tfds.load(TFDS_NAMES[name], split=splits[split], data_dir=data_dir, download=False,
                   try_gcs=False, as_supervised=True, shuffle_files=False)
  except (AssertionError, FileNotFoundError, tfds.core.registered.DatasetNotFoundError) as e:
    raise DataError(f"Data set {name!r} ({split}) is not prepared here: {e}. "
                    f"{_how_to_prepare(name, data_dir)}") from e
  if not as_numpy_arrays:
    return ds
  images, labels = [], []
  for image, label in tfds.as_numpy(ds):
    images.append(image)
    labels.append(label)
  if not images:
    raise DataError(f"Data set {name!r} ({split}) is empty. {_how_to_prepare(name, data_dir)}")
  return np.stack(images).astype(np.uint8), np.asarray(labels, np.int32)
