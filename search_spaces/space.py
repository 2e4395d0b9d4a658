"""The Space record of a validated search space, with the trials it expands to."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from fsvae.errors import FsvaeError


class SpaceError(FsvaeError):
    """The search space file is wrong; the message names the file, the key and the fix."""


@dataclass
class Space:
    name: str
    kind: str  # grid | optuna
    path: str
    text: str  # the file as given, logged with the study
    description: str = ""
    preset: str = "paper"
    objective: str | list[str] = "val_acc_h"  # a list: a multi-objective search
    mode: str | list[str] = "max"
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    variants: list[dict[str, list]] = field(default_factory=list)
    params: dict[str, dict] = field(default_factory=dict)
    strata: dict[str, list] = field(default_factory=dict)
    num_samples: int = 1
    sampler: str = "tpe"
    sampler_seed: int | None = None  # None: an unseeded sampler
    resources: dict[str, float] = field(default_factory=dict)

    def trials(self) -> list[dict[str, Any]]:
        """grid: every trial's config overrides (fixed included), in file order."""
        variants = self.variants or [{}]
        out = []
        for variant in variants:
            for combo in product({**variant, **self.grid}):
                out.append({**self.fixed, **combo})
        return out

    def stratum_values(self) -> list[dict[str, Any]]:
        """optuna: one dict per stratum ({} when unstratified)."""
        return product(self.strata) if self.strata else [{}]

    def to_dict(self) -> dict:
        keys = ["name", "kind", "description", "preset", "objective", "mode", "fixed", "resources"]
        keys += (
            ["grid", "variants"]
            if self.kind == "grid"
            else ["params", "strata", "num_samples", "sampler", "sampler_seed"]
        )
        return {k: getattr(self, k) for k in keys}

    @property
    def objectives(self) -> list[str]:
        """The optimised metrics, the primary one first."""
        return list(self.objective) if isinstance(self.objective, list) else [self.objective]

    @property
    def modes(self) -> list[str]:
        return list(self.mode) if isinstance(self.mode, list) else [self.mode]


def product(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def count(space: Space) -> int:
    """How many trials the space asks for."""
    if space.kind == "grid":
        return len(space.trials())
    return space.num_samples * len(space.stratum_values())
