"""The docs (README.md and docs/*.md) against the code: the config-key table is generated
from the registry, and the README stays an overview."""
from __future__ import annotations

import re

from fsvae import config
from helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
KEYS_PAGE = DOCS / "config-keys.md"


# -- the config keys -----------------------------------------------------------------------

def test_the_config_key_table_is_the_registry():
    text = KEYS_PAGE.read_text(encoding="utf-8")
    start = text.index("<!-- keys:start -->") + len("<!-- keys:start -->")
    end = text.index("<!-- keys:end -->")
    assert text[start:end].strip() == config.describe().strip(), (
        "docs/config-keys.md is stale: regenerate the table between its markers with "
        "`fsvae-study keys`")


# -- the README ---------------------------------------------------------------------------

def test_the_readme_is_short_and_names_the_test_and_demo_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "make test" in text and "make demo" in text


def test_the_demo_folder_is_the_makefiles():
    demo = re.search(r"^DEMO := (\S+)", (REPO / "Makefile").read_text(), re.M).group(1)
    assert f"{demo}/" in README.read_text(encoding="utf-8")
    assert f"/{demo}/" in (REPO / ".gitignore").read_text().splitlines()


# -- the cluster example -------------------------------------------------------------------

def test_the_cluster_example_keeps_every_service_off_the_open_network():
    """Ray's dashboard runs code for whoever reaches it, and MLflow's server has no login:
    the launcher example binds neither to every interface and keeps Ray's token on."""
    text = (REPO / "cluster" / "aws-gpu.yaml").read_text(encoding="utf-8")
    commands = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert not any("0.0.0.0" in ln for ln in commands)
    assert not any("RAY_AUTH_MODE=disabled" in ln for ln in commands)
    assert "--dashboard-host=127.0.0.1" in text
    assert all("RAY_AUTH_MODE=token ray start" in ln for ln in commands
               if "ray start" in ln)
