"""Reading a space file (a path, or a shipped space by name) into a validated Space."""

from __future__ import annotations

from pathlib import Path

import yaml

from search_spaces.space import Space, SpaceError
from search_spaces.validate import parse

HERE = Path(__file__).parent  # the shipped spaces (package data) sit beside this file


def resolve_path(path: str | Path) -> Path:
    """A path as given, else a shipped space by name (`paper` -> search_spaces/paper.yaml)."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = HERE / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    if shipped.is_file() and len(p.parts) <= 2:
        return shipped
    available = ", ".join(sorted(x.stem for x in HERE.glob("*.yaml")))
    raise SpaceError(f"search space {str(path)!r}: no such file (shipped spaces: {available})")


def load(path: str | Path) -> Space:
    """The Space of a file or shipped name; SpaceError if it is missing, not YAML or wrong."""
    path = resolve_path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{path}: not valid YAML ({e})") from None
    return parse(raw, str(path), text)
