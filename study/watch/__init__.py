"""study.watch: a study's state read from its record alone, while it runs or after, from
any machine that reaches its tracking store: where it is, one reading of it (`Status`),
and that reading as text or JSON (`fsvae-study status`)."""

from study._lazy import face

_NAMES = {
    "Where": "status",
    "Status": "status",
    "locate": "status",
    "read": "status",
    "text": "render",
    "as_json": "render",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
