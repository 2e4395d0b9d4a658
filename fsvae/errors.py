"""Errors a user can fix, in one light module (no torch import), so that the CLI can catch
them without paying for torch when the command does not need it. Each is re-exported by
the module that raises it (fsvae.config.ConfigError, fsvae.data.DataError, ...)."""


class ConfigError(ValueError):
    """A config key or value is wrong; the message names it and what was expected."""


class DataError(ValueError):
    """The dataset cannot be used; the message says what is wrong and where."""


class SplitError(ValueError):
    """The requested split cannot be made from this dataset."""


class BackboneError(ValueError):
    """The backbone or its weights cannot be built; the message says what to use instead."""


class TrialError(ValueError):
    """The trial's inputs cannot work together (e.g. load_size smaller than image_size)."""
