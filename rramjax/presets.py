"""Config presets shared by configs/vgg16_*.py: the paper's VGG16 pruning targets and schedule."""

# The paper's per-layer pattern counts and overall 3x3-conv sparsity (docs/MODEL.md section 1).
PAPER = {
    "cifar10": ([2, 2, 2, 6, 8, 8, 8, 6, 5, 4, 6, 6, 8], 0.8603),
    "cifar100": ([2, 2, 2, 2, 2, 8, 8, 8, 5, 6, 7, 6, 8], 0.8523),
    "imagenet": ([2, 2, 2, 2, 2, 9, 12, 12, 9, 10, 6, 4, 4], 0.8248),
}


def vgg16_config(name, dataset, arg, *, patterns, sparsity, pad_to=None, hidden=(), epochs=(160, 30, 40),
                 batch_size=256, lr=(0.05, 0.01, 0.005), augment="crop_flip", on_device=True):
  pre, admm, fine = epochs
  config = {
      "name": name,
      "seed": 0,
      "data": {"name": dataset, "pad_to": pad_to, "augment": augment, "on_device": on_device},
      "model": {"name": "vgg16", "width": 1.0, "hidden": list(hidden)},
      "train": {"batch_size": batch_size, "eval_batch_size": 1000, "optimizer": "sgd",
                "momentum": 0.9, "weight_decay": 5e-4, "pretrain_epochs": pre,
                "pretrain_lr": lr[0], "admm_epochs": admm, "admm_lr": lr[1],
                "finetune_epochs": fine, "finetune_lr": lr[2], "hwtune_epochs": 2,
                "hwtune_lr": lr[2] / 5, "log_every": 100},
      "prune": {"enabled": True, "patterns_per_layer": list(patterns), "library": "greedy",
                "sparsity": sparsity, "allocation": "uniform", "rho": 1e-3, "rho_growth": 1.3,
                "rho_max": 0.1, "admm_update_every": 500},
      "crossbar": {"train_fidelity": "ou", "eval_fidelity": "ou", "eval_seeds": 8,
                   "eval_read_noise_lsb": [0.5], "calib_examples": 512},
  }
  if arg == "smoke":
    config["data"].update(train_limit=256, test_limit=128, on_device=False)
    config["model"]["width"] = 0.125
    config["train"].update(batch_size=32, eval_batch_size=64, pretrain_epochs=1, admm_epochs=1,
                           finetune_epochs=1, hwtune_epochs=1, hwtune_steps=1, log_every=2)
    config["prune"]["admm_update_every"] = 4
    config["crossbar"].update(eval_seeds=2, calib_examples=32, eval_limit=64)
  elif arg is not None:
    raise ValueError(f"Unknown variant {arg!r}; use ':smoke' or nothing.")
  return config
