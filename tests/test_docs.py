"""The README's config-key table is generated from the code, so it cannot go stale."""
from __future__ import annotations

from pathlib import Path

from fsvae import config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_config_key_as_the_code_defines_it():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- keys:start -->") + len("<!-- keys:start -->")
    end = text.index("<!-- keys:end -->")
    assert text[start:end].strip() == config.describe().strip(), (
        "README config-key table is stale: regenerate it from `fsvae-study keys`")


def test_readme_names_the_test_and_demo_commands():
    text = README.read_text(encoding="utf-8")
    assert "make test" in text and "make demo" in text
