"""What each phase adds to the generic loop: extra state, penalties, transitions, reports."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rramjax.config import Config
from rramjax.models import ideal_conv


def init_extra_state(config: Config, kernels) -> dict:
  del config, kernels
  return {"hw_state": {}}


def trainable_hw_key(config: Config):
  del config
  return None


def trainable(state: dict, config: Config) -> dict:
  out = {"params": state["params"]}
  key = trainable_hw_key(config)
  if key:
    out["hw"] = state["hw_state"][key]
  return out


def train_fidelity(config: Config, phase: str) -> str:
  return config.crossbar.train_fidelity if phase == "finetune" else "ideal"


def conv_builder(config: Config, fidelity: str):
  del config, fidelity
  return lambda masks, hw_state, key: ideal_conv


def penalty(config: Config, phase: str):
  del config, phase
  return None


def begin_phase(trainer, state: dict, phase: str) -> dict:
  del trainer, phase
  return state


def end_epoch(trainer, state: dict, epoch) -> dict:
  del trainer, epoch
  return state


def epoch_report(trainer, state: dict, epoch) -> dict:
  del trainer, state, epoch
  return {}


def final_report(trainer, state: dict) -> dict:
  return {"test": trainer.evaluate(state), "epochs": len(trainer.plan),
          "steps": int(state["step"])}
