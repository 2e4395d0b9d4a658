"""Search spaces: YAML files, loaded and validated before anything starts.

A space is one of two kinds (see the shipped files for examples):

  kind: grid      the cartesian product of `grid` crossed with the union of `variants`
                  (each variant is itself a small grid), run by Ray Tune's own variant
                  generation. Table 2 is methods x sampling factors x n_f x seeds.
  kind: optuna    Optuna TPE (through Ray Tune's OptunaSearch) over `params`, with
                  `fixed` keys beside them, `num_samples` trials per stratum. `strata`
                  (e.g. n_f: [5, 10, 30, 50]) gives each value its own search: acc_h at
                  different n_f is not comparable, so one search over n_f would mostly
                  learn that larger n_f is better.

Top-level keys: name, kind, description, preset, objective, mode, fixed, grid, variants,
params, strata, num_samples, sampler (tpe or nsga2), sampler_seed (absent or null:
unseeded), resources. `objective` may be a list of validation metrics, with `mode` a
list as long: a multi-objective search (a Pareto front instead of one best trial). Config
keys anywhere in a space are fsvae config keys (`fsvae-study keys`), and their values are
checked like `--set` values.

A searched parameter is {type: int|float|categorical, low, high, log, step, choices,
when}. `when: {parent: value-or-list}` makes it conditional: it is sampled only when the
parent (an earlier categorical parameter) took one of those values.
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsvae import config as config_mod
from fsvae.errors import FsvaeError

TOP_KEYS = {"name", "kind", "description", "preset", "objective", "mode", "fixed", "grid",
            "variants", "params", "strata", "num_samples", "sampler", "sampler_seed",
            "resources"}
SAMPLERS = ("tpe", "nsga2")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}
HERE = Path(__file__).parent


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
            for combo in _product({**variant, **self.grid}):
                out.append({**self.fixed, **combo})
        return out

    def stratum_values(self) -> list[dict[str, Any]]:
        """optuna: one dict per stratum ({} when unstratified)."""
        return _product(self.strata) if self.strata else [{}]

    def to_dict(self) -> dict:
        keys = ["name", "kind", "description", "preset", "objective", "mode", "fixed",
                "resources"]
        keys += ["grid", "variants"] if self.kind == "grid" else \
            ["params", "strata", "num_samples", "sampler", "sampler_seed"]
        return {k: getattr(self, k) for k in keys}

    @property
    def objectives(self) -> list[str]:
        """The optimised metrics, the primary one first."""
        return list(self.objective) if isinstance(self.objective, list) else [self.objective]

    @property
    def modes(self) -> list[str]:
        return list(self.mode) if isinstance(self.mode, list) else [self.mode]


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
    path = resolve_path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{path}: not valid YAML ({e})") from None
    return parse(raw, str(path), text)


def parse(raw: Any, where: str = "<space>", text: str = "") -> Space:
    def fail(msg: str) -> SpaceError:
        return SpaceError(f"{where}: {msg}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping of top-level keys (name, kind, ...)")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        close = [m for k in unknown for m in difflib.get_close_matches(str(k), TOP_KEYS, n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise fail(f"unknown top-level key(s) {unknown}{hint} (expected some of "
                   f"{sorted(TOP_KEYS)})")
    kind = raw.get("kind")
    if kind not in ("grid", "optuna"):
        raise fail(f"kind must be grid or optuna, got {kind!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise fail(f"name must be a non-empty string without '/', got {name!r}")
    preset = raw.get("preset", "paper")
    if preset not in config_mod.PRESETS:
        raise fail(f"preset {preset!r} is not one of {sorted(config_mod.PRESETS)}")
    objective, mode = _objectives(raw.get("objective", "val_acc_h"), raw.get("mode", "max"),
                                  kind, fail)

    fixed = _config_values(raw.get("fixed") or {}, "fixed", fail, lists=False)
    space = Space(name=name, kind=kind, path=where, text=text,
                  description=str(raw.get("description", "")).strip(), preset=preset,
                  objective=objective, mode=mode, fixed=fixed,
                  resources=_resources(raw.get("resources") or {}, fail))
    if kind == "grid":
        for key in ("params", "strata", "num_samples", "sampler", "sampler_seed"):
            if key in raw:
                raise fail(f"{key!r} belongs to kind: optuna, not a grid")
        space.grid = _config_values(raw.get("grid") or {}, "grid", fail, lists=True)
        variants = raw.get("variants") or []
        if not isinstance(variants, list):
            raise fail("variants must be a list of mappings")
        space.variants = [_config_values(v, f"variants[{i}]", fail, lists=True)
                          for i, v in enumerate(variants)]
        for i, v in enumerate(space.variants):
            clash = sorted((set(v) & set(space.grid)) | (set(v) & set(fixed)))
            if clash:
                raise fail(f"variants[{i}] sets {clash}, also set in grid/fixed")
        clash = sorted(set(space.grid) & set(fixed))
        if clash:
            raise fail(f"keys {clash} are in both grid and fixed")
        if not space.trials():
            raise fail("the grid is empty")
        for cfg in space.trials():
            try:
                config_mod.resolve(cfg, preset=preset)
            except config_mod.ConfigError as e:
                raise fail(f"trial {cfg}: {e}") from None
    else:
        for key in ("grid", "variants"):
            if key in raw:
                raise fail(f"{key!r} belongs to kind: grid, not optuna")
        n = raw.get("num_samples", 10)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise fail(f"num_samples must be a positive integer, got {n!r}")
        space.num_samples = n
        seed = raw.get("sampler_seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise fail(f"sampler_seed must be an integer, or null (or absent) for an unseeded "
                       f"sampler, got {seed!r}")
        space.sampler_seed = seed
        sampler = raw.get("sampler", "tpe")
        if sampler not in SAMPLERS:
            raise fail(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        space.sampler = sampler
        space.strata = _config_values(raw.get("strata") or {}, "strata", fail, lists=True)
        space.params = _params(raw.get("params") or {}, fail)
        if not space.params:
            raise fail("an optuna space needs at least one entry under params")
        taken = {"fixed": set(fixed), "strata": set(space.strata)}
        for where_, keys in taken.items():
            clash = sorted(keys & set(space.params))
            if clash:
                raise fail(f"keys {clash} are both searched (params) and in {where_}")
        clash = sorted(set(fixed) & set(space.strata))
        if clash:
            raise fail(f"keys {clash} are in both fixed and strata")
        for stratum in space.stratum_values():
            try:
                config_mod.resolve({**fixed, **stratum}, preset=preset)
            except config_mod.ConfigError as e:
                raise fail(f"stratum {stratum}: {e}") from None
    return space


def _objectives(objective: Any, mode: Any, kind: str, fail) -> tuple:
    """One objective and mode, or (a multi-objective search) lists of each, as long as
    each other: validation metrics only, since test metrics are reported, never optimised."""
    many = isinstance(objective, list)
    objectives = objective if many else [objective]
    modes = mode if isinstance(mode, list) else [mode] * len(objectives)
    if not objectives or len(set(map(str, objectives))) != len(objectives):
        raise fail(f"objective must be a metric or a list of distinct metrics, got "
                   f"{objective!r}")
    for o in objectives:
        if not isinstance(o, str) or not o.startswith("val_"):
            raise fail(f"objective must be a validation metric (val_...), got {o!r}: test "
                       f"metrics are reported, never optimised")
    if len(modes) != len(objectives) or any(m not in ("max", "min") for m in modes):
        raise fail(f"mode must be max or min, one per objective, got {mode!r} for "
                   f"{objectives}")
    if many and kind != "optuna":
        raise fail("several objectives need kind: optuna (a grid has no search to steer)")
    return (objectives, modes) if many else (objectives[0], modes[0])


def _product(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _config_values(section: Any, where: str, fail, lists: bool) -> dict:
    if not isinstance(section, dict):
        raise fail(f"{where} must be a mapping of config keys")
    out = {}
    for key, value in section.items():
        try:
            config_mod.check_key(str(key))
        except config_mod.ConfigError as e:
            raise fail(f"{where}: {e}") from None
        values = value if isinstance(value, list) else [value]
        if lists and not values:
            raise fail(f"{where}.{key}: an empty list gives no trial")
        if not lists and isinstance(value, list):
            raise fail(f"{where}.{key}: expected one value, got a list")
        checked = []
        for v in values:
            try:
                checked.append(config_mod.check_value(key, v))
            except config_mod.ConfigError as e:
                raise fail(f"{where}: {e}") from None
        out[key] = checked if lists else checked[0]
    return out


def _resources(section: Any, fail) -> dict[str, float]:
    if not isinstance(section, dict) or set(section) - {"cpu", "gpu"}:
        raise fail(f"resources must be a mapping with cpu and/or gpu, got {section!r}")
    out = {}
    for k, v in section.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise fail(f"resources.{k} must be a non-negative number, got {v!r}")
        out[k] = float(v)
    return out


def _params(section: Any, fail) -> dict[str, dict]:
    if not isinstance(section, dict):
        raise fail("params must be a mapping of config key -> distribution")
    out: dict[str, dict] = {}
    for key, spec in section.items():
        where = f"params.{key}"
        try:
            config_mod.check_key(str(key))
        except config_mod.ConfigError as e:
            raise fail(f"{where}: {e}") from None
        if not isinstance(spec, dict):
            raise fail(f"{where}: expected a mapping like {{type: int, low: 1, high: 10}}")
        unknown = sorted(set(spec) - PARAM_KEYS)
        if unknown:
            raise fail(f"{where}: unknown field(s) {unknown}; expected some of "
                       f"{sorted(PARAM_KEYS)}")
        kind = spec.get("type")
        key_spec = config_mod.KEYS[key]

        def check(v: Any, key: str = key) -> Any:
            return config_mod.check_value(key, v)

        try:
            if kind == "categorical":
                choices = spec.get("choices")
                if not isinstance(choices, list) or not choices:
                    raise fail(f"{where}: categorical needs a non-empty choices list")
                extra = sorted(set(spec) - {"type", "choices", "when"})
                if extra:
                    raise fail(f"{where}: {extra} do not apply to a categorical")
                clean = {"type": kind, "choices": [check(c) for c in choices]}
            elif kind in ("int", "float"):
                if "choices" in spec:
                    raise fail(f"{where}: choices belong to type: categorical")
                low, high = spec.get("low"), spec.get("high")
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in (low, high)):
                    raise fail(f"{where}: {kind} needs numeric low and high, got "
                               f"low={low!r} high={high!r}")
                if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
                    raise fail(f"{where}: int needs integer low and high")
                if key_spec.kind is not (int if kind == "int" else float) and not (
                        kind == "int" and key_spec.kind is float):
                    raise fail(f"{where}: type {kind} does not fit config key {key!r} "
                               f"({key_spec.kind.__name__})")
                if not low < high:
                    raise fail(f"{where}: low ({low}) must be below high ({high})")
                log = spec.get("log", False)
                if not isinstance(log, bool):
                    raise fail(f"{where}: log must be true or false")
                if log and low <= 0:
                    raise fail(f"{where}: log scale needs low > 0, got {low}")
                step = spec.get("step")
                if step is not None and (log or not isinstance(step, (int, float)) or step <= 0):
                    raise fail(f"{where}: step must be a positive number and cannot go with log")
                check(low)
                check(high)
                clean = {"type": kind, "low": low, "high": high, "log": log}
                if step is not None:
                    clean["step"] = step
            else:
                raise fail(f"{where}: unknown distribution type {kind!r}; expected int, "
                           f"float or categorical")
        except config_mod.ConfigError as e:
            raise fail(f"{where}: {e}") from None
        when = spec.get("when")
        if when is not None:
            if not isinstance(when, dict) or len(when) != 1:
                raise fail(f"{where}: when must name one parent, like "
                           f"{{when: {{beta_schedule: cyclical}}}}")
            (parent, values), = when.items()
            if parent not in out:
                raise fail(f"{where}: its parent {parent!r} is not a searched parameter "
                           f"defined above it")
            if out[parent]["type"] != "categorical":
                raise fail(f"{where}: its parent {parent!r} must be categorical")
            values = values if isinstance(values, list) else [values]
            bad = [v for v in values if v not in out[parent]["choices"]]
            if bad:
                raise fail(f"{where}: when {parent} in {bad}, but {parent}'s choices are "
                           f"{out[parent]['choices']}")
            clean["when"] = {parent: values}
        out[key] = clean
    return out


def suggest(trial, params: dict[str, dict]) -> None:
    """Optuna define-by-run: samples `params`, skipping conditionals whose parent differs.

    Module-level so that Ray can pickle it (as functools.partial(suggest, params=...)).
    Returns None: fixed keys are merged by the trainable, not by the searcher.
    """
    chosen: dict[str, Any] = {}
    for key, spec in params.items():
        if not _active(spec, chosen):
            continue
        d = distribution(spec)
        if spec["type"] == "categorical":
            chosen[key] = trial.suggest_categorical(key, d.choices)
        elif spec["type"] == "int":
            chosen[key] = trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
        else:
            chosen[key] = trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
    return None


def distribution(spec: dict):
    """The Optuna distribution of one searched parameter, exactly as `suggest` samples it:
    a trial rebuilt from the record must carry the same one (Optuna compares them)."""
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)

    if spec["type"] == "categorical":
        return CategoricalDistribution(spec["choices"])
    if spec["type"] == "int":
        return IntDistribution(int(spec["low"]), int(spec["high"]), log=spec["log"],
                               step=int(spec.get("step", 1)))
    return FloatDistribution(float(spec["low"]), float(spec["high"]), log=spec["log"],
                             step=spec.get("step"))


def distributions(params: dict[str, dict], point: dict[str, Any]) -> dict[str, Any]:
    """The distributions of the parameters `point` chose: those whose `when` it meets.
    ValueError names a parameter the point lacks or one it should not have."""
    out: dict[str, Any] = {}
    for key, spec in params.items():
        if _active(spec, point):
            if key not in point:
                raise ValueError(f"the point {point} lacks the searched parameter {key!r}")
            out[key] = distribution(spec)
    extra = sorted(set(point) - set(out))
    if extra:
        raise ValueError(f"the point {point} has {extra}, which the space does not search "
                         f"there")
    return out


def _active(spec: dict, chosen: dict[str, Any]) -> bool:
    """Whether a parameter is sampled, given the values its parents took."""
    when = spec.get("when")
    if not when:
        return True
    (parent, values), = when.items()
    return parent in chosen and chosen[parent] in values


def count(space: Space) -> int:
    """How many trials the space asks for."""
    if space.kind == "grid":
        return len(space.trials())
    return space.num_samples * len(space.stratum_values())

