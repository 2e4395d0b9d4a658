"""study.search: a search stratum as an Optuna study kept in step with the record: the Ray
Tune searcher that asks it, the sync that rebuilds it from MLflow, and the in-memory
copy that writes through."""

from study._lazy import face

_NAMES = {
    "OptunaSearcher": "searcher",
    "open_study": "searcher",
    "reconcile": "searcher",
    "study_name": "searcher",
    "trial_key": "searcher",
    "Synced": "sync",
    "Mirror": "mirror",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
