"""The README's config-key table is generated from the code, so it cannot go stale."""
from __future__ import annotations

from fsvae import config
from helpers import REPO

README = REPO / "README.md"


def test_readme_lists_every_config_key_as_the_code_defines_it():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- keys:start -->") + len("<!-- keys:start -->")
    end = text.index("<!-- keys:end -->")
    assert text[start:end].strip() == config.describe().strip(), (
        "README config-key table is stale: regenerate it from `fsvae-study keys`")


def test_readme_names_the_test_and_demo_commands():
    text = README.read_text(encoding="utf-8")
    assert "make test" in text and "make demo" in text


def test_the_cluster_example_keeps_every_service_off_the_open_network():
    """Ray's dashboard runs code for whoever reaches it, and MLflow's server has no login:
    the launcher example binds neither to every interface and keeps Ray's token on."""
    text = (README.parent / "cluster" / "aws-gpu.yaml").read_text(encoding="utf-8")
    commands = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert not any("0.0.0.0" in ln for ln in commands)
    assert not any("RAY_AUTH_MODE=disabled" in ln for ln in commands)
    assert "--dashboard-host=127.0.0.1" in text
    assert all("RAY_AUTH_MODE=token ray start" in ln for ln in commands
               if "ray start" in ln)
