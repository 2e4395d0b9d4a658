"""study.driver: the driver of a study: one session from its claim to its summary, the Ray
Tune run of each stratum, the trainable its workers run, the console, and the cluster it
runs on."""

from study._lazy import face

_NAMES = {
    "StudyResult": "session",
    "Session": "session",
    "TrialContext": "trainable",
    "start": "run",
    "resume": "run",
    "execute": "run",
    "locate": "run",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
