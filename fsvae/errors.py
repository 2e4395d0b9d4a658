"""The errors of the whole project, by one base, in one light module (no torch import).

`FsvaeError` is the base of every error a user can fix, in every package: fsvae's own
below, search_spaces.SpaceError, study.errors.StudyError (and results.errors.ResultsError
under it). The `fsvae-study` command line catches FsvaeError and prints its message as one
line with exit status 2. A FsvaeError is a ValueError, as callers have caught them.
NonFiniteLoss is not one: it is a trial's own failure, recorded as such. Each user error is
re-exported by the module that raises it (fsvae.config.ConfigError, fsvae.data.DataError,
...).
"""


class FsvaeError(ValueError):
    """An error the user can fix; the message names the bad input and what was expected."""


class ConfigError(FsvaeError):
    """A config key or value is wrong; the message names it and what was expected."""


class DataError(FsvaeError):
    """The dataset cannot be used; the message says what is wrong and where."""


class SplitError(FsvaeError):
    """The requested split cannot be made from this dataset."""


class BackboneError(FsvaeError):
    """The backbone or its weights cannot be built; the message says what to use instead."""


class TrialError(FsvaeError):
    """The trial's inputs cannot work together (e.g. load_size smaller than image_size)."""


class ModelError(FsvaeError):
    """A model cannot be assembled or loaded; the message names the missing piece."""


class NonFiniteLoss(RuntimeError):
    """A training loss became NaN or infinite (in any of the three stages): the trial fails
    with this as its reason."""
