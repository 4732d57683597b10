"""VGG16 on ImageNet (224x224, 4096-4096 classifier) with the paper's pattern counts and sparsity.

  rramjax run configs/vgg16_imagenet.py --set data.tfds_data_dir=DIR   # imagenet2012, prepared

Large: needs GPUs and days; the host pipeline streams it (on_device off).
"""

from rramjax.presets import PAPER, vgg16_config


def get_config(arg=None):
  patterns, sparsity = PAPER["imagenet"]
  return vgg16_config("vgg16_imagenet", "imagenet", arg, patterns=patterns, sparsity=sparsity,
                      hidden=(4096, 4096), epochs=(90, 20, 20), lr=(0.01, 0.001, 0.001),
                      batch_size=256, on_device=False)
