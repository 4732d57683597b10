"""Errors that rramjax raises for bad input: each message says what is wrong and what to do."""


class RramjaxError(Exception):
  """Base class of every error rramjax raises on purpose."""


class ConfigError(RramjaxError, ValueError):
  """A malformed configuration: unknown key, wrong type or out-of-range value."""


class DataError(RramjaxError):
  """A missing, corrupt or malformed data set."""


class CheckpointError(RramjaxError):
  """A missing or corrupt checkpoint."""


class TrainingDivergedError(RramjaxError, FloatingPointError):
  """The loss became NaN or inf, or rose far above its starting value; the last good checkpoint is kept."""


class MaskError(RramjaxError, ValueError):
  """A mask file or array that the mapper cannot use."""


class WorkdirError(RramjaxError):
  """A run folder or output folder that cannot be used: a file, unwritable, or holding another run."""
