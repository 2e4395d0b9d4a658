"""The study's errors a user can fix: the CLI prints them as one line and exits with status 2.
They sit under fsvae.errors.FsvaeError, the base of every such error in the project."""

from fsvae.errors import FsvaeError


class StudyError(FsvaeError):
    """A study cannot start or continue; the message names the bad input."""
