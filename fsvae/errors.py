"""The errors fsvae raises with a reason it can name, in one light module (no torch import).

The CLI catches the ones a user can fix (all but NonFiniteLoss) without paying for torch
when the command does not need it. Each user error is re-exported by the module that
raises it (fsvae.config.ConfigError, fsvae.data.DataError, ...).
"""


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


class NonFiniteLoss(RuntimeError):
    """A training loss became NaN or infinite (in any of the three stages): the trial fails
    with this as its reason."""
