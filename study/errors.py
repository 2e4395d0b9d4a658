"""Errors a user can fix: the CLI prints them as one line and exits with status 2."""


class StudyError(ValueError):
    """A study cannot start or continue; the message names the bad input."""
