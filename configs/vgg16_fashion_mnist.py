"""VGG16 on Fashion-MNIST padded to 32x32 (GPU): the whole data set held on the device.

  rramjax run configs/vgg16_fashion_mnist.py
"""

from rramjax.presets import PAPER, vgg16_config


def get_config(arg=None):
  patterns, sparsity = PAPER["cifar10"]
  config = vgg16_config("vgg16_fashion_mnist", "fashion_mnist", arg, patterns=patterns,
                        sparsity=sparsity, pad_to=32, epochs=(30, 10, 10), lr=(0.05, 0.01, 0.005),
                        augment="none")
  if arg == "smoke":
    config["data"]["pad_to"] = 32
  return config
