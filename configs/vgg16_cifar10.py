"""VGG16 on CIFAR10 as in the paper: its per-layer pattern counts and sparsity (GPU, tfds data).

  rramjax run configs/vgg16_cifar10.py --set data.tfds_data_dir=DIR      # prepared with tfds build
"""

from rramjax.presets import PAPER, vgg16_config


def get_config(arg=None):
  patterns, sparsity = PAPER["cifar10"]
  return vgg16_config("vgg16_cifar10", "cifar10", arg, patterns=patterns, sparsity=sparsity)
