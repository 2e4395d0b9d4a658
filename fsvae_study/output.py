"""The command line's messages: one clear line on stderr each."""

from __future__ import annotations

import sys


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
