"""study.identity: who a study is and who may write it: its name in its tracking store, the
parent run that holds it, its lease (one writer, a fencing epoch), a session's claim,
and discarding a study."""

from study._lazy import face

_NAMES = {
    "Lease": "lease",
    "LeaseRef": "lease",
    "Superseded": "lease",
    "Busy": "lease",
    "acquire": "lease",
    "Claim": "claim",
    "find": "discard",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
