"""The Python names the README and docs/ tell users to import still import: every
`from study... import ...` / `from results... import ...` line of their code blocks, and
every dotted name in backticks (`results.analysis.analyze`, `study.plan.StudyOptions`),
resolved as a user would (a module, then its attributes)."""

from __future__ import annotations

import importlib
import re

import pytest

from helpers import REPO

# The changelog names the paths of its day, on purpose.
PAGES = [
    REPO / "README.md",
    *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "changelog.md"),
]
FILES = {"study.json"}  # a file's name, not Python's
FROM = re.compile(r"^\s*(?:>>> )?from ((?:study|results)(?:\.\w+)*) import ([\w, ]+)$", re.M)
DOTTED = re.compile(r"`((?:study|results)(?:\.[A-Za-z_]\w*)+)`")


def named() -> list[tuple[str, str]]:
    """(page, dotted name) of every name the pages name."""
    out = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for module, names in FROM.findall(text):
            out |= {(page.name, f"{module}.{n.strip()}") for n in names.split(",") if n.strip()}
        out |= {(page.name, d) for d in DOTTED.findall(text) if d not in FILES}
    return sorted(out)


def resolve(dotted: str):
    """The object `dotted` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_pages_name_some_python_names():
    names = {d for _, d in named()}
    assert {"study.run_study", "results.load_table"} <= names  # the README's two APIs


@pytest.mark.parametrize("page, dotted", named(), ids=lambda v: str(v))
def test_a_name_the_docs_give_imports(page, dotted):
    assert resolve(dotted) is not None
