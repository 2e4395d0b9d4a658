"""The error a table or figure request raises; the CLI prints it as one line and exits 2."""

from __future__ import annotations

from study.errors import StudyError


class ResultsError(StudyError):
    """A table or figure cannot be made; the message names what is missing and what exists."""
