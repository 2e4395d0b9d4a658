"""A setting out of its range (a flag, or an FSVAE_* variable the trials read too) is refused
with its name and range before the study starts: exit 2, one line, nothing written."""

from __future__ import annotations

import pytest

from helpers import cli, env


@pytest.mark.parametrize(
    "setting, says",
    [
        ({"FSVAE_LIVE_S": "abc"}, "FSVAE_LIVE_S='abc': expected seconds above 0"),
        ({"FSVAE_SYSTEM_METRICS_S": "-1"}, "FSVAE_SYSTEM_METRICS_S='-1': expected seconds"),
        ({"FSVAE_LEASE_S": "1"}, "FSVAE_LEASE_S='1': expected seconds between 2 and 3600"),
        ({}, "--status-every 0.0: expected seconds above 0"),
    ],
)
def test_a_bad_setting_is_refused_before_the_study_starts(tmp_path, demo_root, setting, says):
    extra = [] if setting else ["--status-every", "0"]
    out = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(demo_root),
        "--storage",
        str(tmp_path / "st"),
        "--name",
        "x",
        *extra,
        environ=env(**setting),
    )
    assert out.returncode == 2 and says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "st").exists()  # nothing written
