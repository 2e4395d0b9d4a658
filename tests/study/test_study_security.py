"""A local study's Ray keeps token authentication on: its processes listen on every
interface, so a process without the token (another user, another machine) must not be able
to join it as a driver and run code."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import FAST, env, kill_driver, make_data, pause_env, paused, start_cli, wait_until

pytestmark = pytest.mark.slow

JOIN = "import ray; ray.init(address={address!r}); print('JOINED', ray.cluster_resources())"


def test_a_process_without_the_token_cannot_join_a_running_studys_ray(tmp_path):
    data = make_data(tmp_path / "data")
    pauses = tmp_path / "pauses"
    log = tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "studies"),
        "--name",
        "s",
        *FAST,
        log=log,
        environ=pause_env(pauses, "trial_start"),
    )
    try:
        wait_until(lambda: paused(pauses, "trial_start"), 400, "a trial to start", proc, log)
        line = re.search(r"Ray: local, at (\S+), token authentication on", log.read_text())
        assert line, log.read_text()[-2000:]
        address = line.group(1)
        home = tmp_path / "elsewhere"  # no ~/.ray/auth_token there
        home.mkdir()
        for mode in ("disabled", "token"):
            e = env(HOME=str(home), RAY_AUTH_MODE=mode)
            e.pop("RAY_AUTH_TOKEN", None)
            e.pop("RAY_AUTH_TOKEN_PATH", None)
            joined = subprocess.run(
                [sys.executable, "-c", JOIN.format(address=address)],
                env=e,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert joined.returncode != 0 and "JOINED" not in joined.stdout, mode
            assert re.search(r"InvalidAuthToken|AuthenticationError|token", joined.stderr), (
                joined.stderr[-2000:]
            )
    finally:
        kill_driver(proc)
