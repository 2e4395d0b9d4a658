"""A study's process ends without the interpreter's teardown (fsvae_study/cli.py
_exit_now), but only once its threads are done: a thread-pool executor left idle (MLflow
downloads artifacts through one) must not keep it waiting forever."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO

SCRIPT = """
from concurrent.futures import ThreadPoolExecutor
import threading, time
from fsvae_study import cli

pool = ThreadPoolExecutor(2)
pool.submit(time.sleep, 0.1).result()  # done: its workers now idle, waiting for more
late = []
threading.Thread(target=lambda: (time.sleep(0.5), late.append(1),
                                 print("joined", flush=True))).start()
cli._exit_now(7)
"""


def test_the_exit_waits_for_threads_but_not_for_an_idle_pool():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip() == "joined"  # the other thread was waited for
