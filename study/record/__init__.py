"""study.record: the study's MLflow record: the names it writes (schema), the one reader
and its rules (which run counts for a trial, the best trial), what a trial's run writes,
and the stores made whole before use."""

from study._lazy import face

_NAMES = {
    "Entry": "read",
    "short_key": "read",
    "goals": "read",
    "order": "read",
    "best_trials": "read",
    "candidates": "read",
    "one_run_per_trial": "read",
    "TrialRecorder": "write",
    "RecordConflict": "write",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
