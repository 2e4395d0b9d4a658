"""study.hooks: hooks for the failure tests and the benchmarks, not for users: named pause
and failure points (FSVAE_PAUSE_AT, FSVAE_FAIL_AT) and a synthetic trial
(FSVAE_BENCH_TRIAL). Unset, they are not on any code path."""

from study._lazy import face

_NAMES = {
    "InjectedFault": "faults",
    "pause": "faults",
    "synthetic_trial": "bench_trial",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
