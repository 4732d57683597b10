"""Config: validation errors name the key, `--set` overrides, config files and their variants."""

import json
import math

import pytest

from conftest import ROOT
from rramjax.config import Config, from_dict, load_config, parse_override
from rramjax.errors import ConfigError

SMALL = str(ROOT / "configs" / "fashion_mnist_small.py")
CONFIG_FILES = sorted((ROOT / "configs").glob("*.py"))


def test_defaults_validate_and_round_trip():
  config = from_dict({})
  assert isinstance(config, Config) and config.seed == 0
  assert from_dict(config.to_dict()) == config


@pytest.mark.parametrize("values, key", [
    ({"bogus": 1}, "bogus"),
    ({"train": {"batch_sise": 64}}, "train.batch_sise"),
    ({"data": {"dir": "/x"}}, "data.dir"),
    ({"crossbar": {"fidelity": "ou"}}, "crossbar.fidelity"),
])
def test_unknown_key_is_named(values, key):
  with pytest.raises(ConfigError, match="Unknown") as e:
    from_dict(values)
  assert key in str(e.value)
  assert "known keys" in str(e.value)


def test_unknown_hardware_key_is_named():
  with pytest.raises(ConfigError, match="bogus"):
    from_dict({"hardware": {"bogus": 1}})


@pytest.mark.parametrize("values, key", [
    ({"train": {"batch_size": -1}}, "train.batch_size"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"train": {"pretrain_lr": math.nan}}, "train.pretrain_lr"),
    ({"train": {"momentum": 1.0}}, "train.momentum"),
    ({"train": {"optimizer": "lion"}}, "train.optimizer"),
    ({"train": {"pretrain_epochs": -2}}, "train.pretrain_epochs"),
    ({"data": {"train_limit": 0}}, "data.train_limit"),
    ({"data": {"normalize": "minmax"}}, "data.normalize"),
    ({"model": {"width": 0}}, "model.width"),
    ({"prune": {"sparsity": 1.0}}, "prune.sparsity"),
    ({"prune": {"patterns_per_layer": 600}}, "prune.patterns_per_layer"),
    ({"crossbar": {"eval_fidelity": "analog"}}, "crossbar.eval_fidelity"),
    ({"crossbar": {"eval_bn_batches": -1}}, "crossbar.eval_bn_batches"),
    ({"train": {"divergence_factor": 1.0}}, "train.divergence_factor"),
    ({"train": {"divergence_factor": math.nan}}, "train.divergence_factor"),
    ({"seed": -1}, "seed"),
    ({"name": "has spaces"}, "name"),
])
def test_bad_value_names_the_key(values, key):
  with pytest.raises(ConfigError) as e:
    from_dict(values)
  assert f"Config key {key}:" in str(e.value)


@pytest.mark.parametrize("values, key", [
    ({"train": {"batch_size": "64"}}, "train.batch_size"),
    ({"train": {"batch_size": 64.0}}, "train.batch_size"),
    ({"train": {"batch_size": True}}, "train.batch_size"),
    ({"data": {"on_device": "yes"}}, "data.on_device"),
    ({"train": {"pretrain_lr": "fast"}}, "train.pretrain_lr"),
])
def test_wrong_type_names_the_key(values, key):
  with pytest.raises(ConfigError, match="wrong type") as e:
    from_dict(values)
  assert key in str(e.value)


def test_section_that_is_not_a_dict():
  with pytest.raises(ConfigError, match="Config key train must be a dict"):
    from_dict({"train": 3})


@pytest.mark.parametrize("text, expected", [
    ("train.batch_size=64", ("train.batch_size", 64)),
    ("train.pretrain_lr=1e-3", ("train.pretrain_lr", 1e-3)),
    ("prune.enabled=False", ("prune.enabled", False)),
    ("data.train_limit=None", ("data.train_limit", None)),
    ("crossbar.eval_read_noise_lsb=[0.5, 1]", ("crossbar.eval_read_noise_lsb", [0.5, 1])),
    ("crossbar.eval_fidelity=ou", ("crossbar.eval_fidelity", "ou")),
    ("data.data_dir=/tmp/a=b", ("data.data_dir", "/tmp/a=b")),
    (" seed =3", ("seed", 3)),
])
def test_override_parsing(text, expected):
  assert parse_override(text) == expected


def test_overrides_apply_to_a_config_file():
  config = load_config(SMALL + ":smoke", ["train.batch_size=32", "crossbar.eval_read_noise_lsb=[0.25]",
                                          "data.data_dir=/some/where", "seed=5"])
  assert config.train.batch_size == 32 and config.seed == 5
  assert config.crossbar.eval_read_noise_lsb == (0.25,)
  assert config.data.data_dir == "/some/where"
  assert config.data.train_limit == 512  # the variant's other values stay


@pytest.mark.parametrize("text, match", [
    ("train.batch_size", "must look like section.key=value"),
    ("seed.value=1", "'seed' is not a section"),
    ("train.batch_size=-1", "Config key train.batch_size:"),
    ("train.nope=1", r"train\.nope"),
])
def test_bad_overrides(text, match):
  with pytest.raises(ConfigError, match=match):
    load_config(SMALL, [text])


def test_missing_config_file(tmp_path):
  missing = tmp_path / "missing.py"
  with pytest.raises(ConfigError, match="not found") as e:
    load_config(f"{missing}:smoke")
  assert str(missing) in str(e.value) and "configs/fashion_mnist_small.py" in str(e.value)


def test_config_file_without_get_config(tmp_path):
  path = tmp_path / "empty.py"
  path.write_text("CONFIG = {}\n")
  with pytest.raises(ConfigError, match="defines no get_config"):
    load_config(str(path))


def test_config_file_that_fails_to_import(tmp_path):
  path = tmp_path / "broken.py"
  path.write_text("def get_config(arg=None):\n  return {\n")
  with pytest.raises(ConfigError, match="failed to load: SyntaxError") as e:
    load_config(str(path))
  assert str(path) in str(e.value)


def test_get_config_returning_a_non_dict(tmp_path):
  path = tmp_path / "listy.py"
  path.write_text("def get_config(arg=None):\n  return [1]\n")
  with pytest.raises(ConfigError, match="must return a dict, got list"):
    load_config(str(path))


def test_bad_variant_name():
  with pytest.raises(ConfigError, match="Unknown variant 'nonsense'"):
    load_config(SMALL + ":nonsense")


def test_ou_aware_variant_is_the_default_job_pruned_for_the_packed_mapping():
  default, ou_aware = load_config(SMALL).to_dict(), load_config(SMALL + ":ou_aware").to_dict()
  assert ou_aware["prune"]["granularity"] == "ou_group" and ou_aware["prune"]["ou_group_layers"] == "multi_ou"
  assert ou_aware["prune"]["filter_order"] == "greedy"
  assert ou_aware["mapper"]["scheme"] == "packed"
  for key in ("granularity", "ou_group_layers", "filter_order"):
    default["prune"].pop(key), ou_aware["prune"].pop(key)
  default["mapper"].pop("scheme"), ou_aware["mapper"].pop("scheme")
  assert default == ou_aware


def test_config_files_exist():
  assert CONFIG_FILES, "configs/*.py is empty"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("variant", ["", ":smoke"])
def test_every_config_file_loads(path, variant):
  config = load_config(f"{path}{variant}")
  assert isinstance(config, Config)
  json.dumps(config.to_dict(), default=str)
  assert from_dict(config.to_dict()) == config


def test_prune_choices_are_the_ones_patterns_implement():
  """rramjax.config cannot import the (jax) patterns package, so its lists must match by test."""
  from rramjax import config, patterns
  assert config.GRANULARITIES == patterns.GRANULARITIES
  assert config.ALLOCATION_RULES == patterns.ALLOCATION_RULES
  for granularity in config.GRANULARITIES:
    assert from_dict({"prune": {"granularity": granularity}}).prune.granularity == granularity
  for rule in config.ALLOCATION_RULES:
    assert from_dict({"prune": {"allocation": rule}}).prune.allocation == rule
  for bad in ({"granularity": "filter"}, {"allocation": "random"}, {"library": "best"},
              {"pattern_size": 10}, {"patterns_per_layer": patterns.MAX_CODE + 1}):
    with pytest.raises(ConfigError, match="prune"):
      from_dict({"prune": bad})
