"""Design-space sweeps: a trained run's accuracy and cost over a grid of hardware choices.

  rramjax.sweep.run_sweep      the `rramjax sweep` command's work (rows, files, plots)
  rramjax.sweep.parse_grid     `--grid KEY=V1,V2,...` texts -> a validated `Grid`
  rramjax.sweep.expand         a grid over a run's config -> its validated `Point`s
  rramjax.sweep.pareto_front   the non-dominated points of (cost, accuracy) pairs
  rramjax.sweep.SweepEvaluator the vectorised accuracy evaluation (jax; `rramjax.sweep.evaluate`)

Definitions (what is vectorised, what recompiles, the ADC energy model): docs/MODEL.md section 10.
The grid, the report and the plots are numpy only; jax loads on first use of the evaluator.
"""

import importlib

from rramjax.sweep.grid import Grid, Point, expand, parse_grid
from rramjax.sweep.report import pareto_front, point_costs

_LAZY = {"run_sweep": "rramjax.sweep.run", "prepare": "rramjax.sweep.run",
         "SweepEvaluator": "rramjax.sweep.evaluate", "static_hardware": "rramjax.sweep.evaluate"}

__all__ = ["Grid", "Point", "expand", "parse_grid", "pareto_front", "point_costs", *_LAZY]


def __getattr__(name):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'rramjax.sweep' has no attribute {name!r}")
