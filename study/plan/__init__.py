"""study.plan: what a study was asked: its plan (study.json), how flags become one, and
where the study lives (a local folder or a URI). Read by the driver, the record and
`results/`."""

from study._lazy import face

_NAMES = {
    "Plan": "plan",
    "DEFAULT_STORAGE": "plan",
    "default_optuna_storage": "plan",
    "make_plan": "making",
    "default_tracking_uri": "storage",
    "is_uri": "storage",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
