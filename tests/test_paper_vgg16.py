"""The generated VGG masks' bounds (scripts/paper_vgg16.py): no scheme of the mapper beats them."""

import importlib.util
import os

import pytest

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import map_network, pooled_out_hw
from rramjax.presets import SMALL_PLAN, pool_after

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "paper_vgg16.py")


@pytest.fixture(scope="module")
def script():
  spec = importlib.util.spec_from_file_location("paper_vgg16", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("width,group", [(0.25, 1), (0.25, 4), (0.5, 4)])
@pytest.mark.parametrize("hw", [HardwareConfig(), HardwareConfig(array_rows=64, array_cols=64, ou_rows=4, ou_cols=4)])
def test_no_scheme_beats_the_masks_bounds(script, width, group, hw):
  masks = script.small_masks(width, seed=1, group=group)
  sides = pooled_out_hw(len(masks), script.SMALL_SIDE, pool_after(SMALL_PLAN))
  report = map_network(masks, sides, hw, schemes=("pattern", "packed"))
  area, energy = script.mask_bounds(report, hw)
  for scheme in ("pattern", "packed"):
    ratio = report["totals"]["ratios_by_scheme"][scheme]
    assert ratio["area_efficiency"] <= area + 1e-9, scheme
    assert ratio["energy_efficiency"] <= energy + 1e-9, scheme
  dense = [m | True for m in masks]  # every weight kept: a mapping can still gain what the baseline wastes
  full = map_network(dense, sides, hw, schemes=("pattern",))
  bounds = script.mask_bounds(full, hw)
  assert min(bounds) >= 1.0 and bounds[0] >= full["totals"]["ratios"]["area_efficiency"] - 1e-9
  assert bounds[1] < energy  # pruning 86% of the weights raises the energy bound
