"""The examples in the public API's docstrings run, and show what they say (doctest).

Add a module to MODULES when you give its public functions examples.
"""

import doctest
import importlib

import pytest

MODULES = (
    "rramjax.config",
    "rramjax.hardware.config",
    "rramjax.hardware.crossbar",
    "rramjax.models",
    "rramjax.ops",
    "rramjax.patterns.connectivity",
    "rramjax.patterns.projection",
    "rramjax.sweep.report",
)
FLAGS = doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
  assert tests, f"{name} has no docstring example"
  report = []
  runner = doctest.DocTestRunner(optionflags=FLAGS)
  for test in tests:
    runner.run(test, out=report.append)
  results = runner.summarize(verbose=False)
  assert results.failed == 0, "".join(report)
