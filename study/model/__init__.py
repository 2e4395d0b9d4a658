"""study.model: a study's best model: logged to its parent run as an MLflow model, found
again by run id or URI, and loaded for `predict`."""

from study._lazy import face

_NAMES = {
    "log_best_model": "best",
    "load_model": "best",
    "default_store": "best",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
