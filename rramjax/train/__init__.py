"""Training: the pure steps, the resumable loop, checkpoints, metrics, ADMM."""

from rramjax.train.loop import Trainer, epoch_plan, train_and_evaluate

__all__ = ["Trainer", "epoch_plan", "train_and_evaluate"]
