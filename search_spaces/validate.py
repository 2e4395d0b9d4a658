"""Validating a space file's mapping into a Space, every key and value checked up front.

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
from typing import Any, TypeGuard

from fsvae import config as config_mod
from search_spaces.space import Space, SpaceError

TOP_KEYS = {
    "name",
    "kind",
    "description",
    "preset",
    "objective",
    "mode",
    "fixed",
    "grid",
    "variants",
    "params",
    "strata",
    "num_samples",
    "sampler",
    "sampler_seed",
    "resources",
}
SAMPLERS = ("tpe", "nsga2")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}


def parse(raw: Any, where: str = "<space>", text: str = "") -> Space:
    """The Space that `raw` (a space file's YAML, as loaded) describes. `where` names the
    file in every SpaceError; `text` is the file as given, logged with the study."""

    def fail(msg: str) -> SpaceError:
        return SpaceError(f"{where}: {msg}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping of top-level keys (name, kind, ...)")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        close = [m for k in unknown for m in difflib.get_close_matches(str(k), TOP_KEYS, n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise fail(
            f"unknown top-level key(s) {unknown}{hint} (expected some of {sorted(TOP_KEYS)})"
        )
    kind = raw.get("kind")
    if kind not in ("grid", "optuna"):
        raise fail(f"kind must be grid or optuna, got {kind!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise fail(f"name must be a non-empty string without '/', got {name!r}")
    preset = raw.get("preset", "paper")
    if preset not in config_mod.PRESETS:
        raise fail(f"preset {preset!r} is not one of {sorted(config_mod.PRESETS)}")
    objective, mode = _objectives(
        raw.get("objective", "val_acc_h"), raw.get("mode", "max"), kind, fail
    )

    fixed = _config_values(raw.get("fixed") or {}, "fixed", fail, lists=False)
    space = Space(
        name=name,
        kind=kind,
        path=where,
        text=text,
        description=str(raw.get("description", "")).strip(),
        preset=preset,
        objective=objective,
        mode=mode,
        fixed=fixed,
        resources=_resources(raw.get("resources") or {}, fail),
    )
    if kind == "grid":
        for key in ("params", "strata", "num_samples", "sampler", "sampler_seed"):
            if key in raw:
                raise fail(f"{key!r} belongs to kind: optuna, not a grid")
        space.grid = _config_values(raw.get("grid") or {}, "grid", fail, lists=True)
        variants = raw.get("variants") or []
        if not isinstance(variants, list):
            raise fail("variants must be a list of mappings")
        space.variants = [
            _config_values(v, f"variants[{i}]", fail, lists=True) for i, v in enumerate(variants)
        ]
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
            raise fail(
                f"sampler_seed must be an integer, or null (or absent) for an unseeded "
                f"sampler, got {seed!r}"
            )
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
        raise fail(f"objective must be a metric or a list of distinct metrics, got {objective!r}")
    for o in objectives:
        if not isinstance(o, str) or not o.startswith("val_"):
            raise fail(
                f"objective must be a validation metric (val_...), got {o!r}: test "
                f"metrics are reported, never optimised"
            )
    if len(modes) != len(objectives) or any(m not in ("max", "min") for m in modes):
        raise fail(f"mode must be max or min, one per objective, got {mode!r} for {objectives}")
    if many and kind != "optuna":
        raise fail("several objectives need kind: optuna (a grid has no search to steer)")
    return (objectives, modes) if many else (objectives[0], modes[0])


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


def _is_number(v: object) -> TypeGuard[int | float]:
    """An int or a float, not a bool (which Python counts as an int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
            raise fail(
                f"{where}: unknown field(s) {unknown}; expected some of {sorted(PARAM_KEYS)}"
            )
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
                if not (_is_number(low) and _is_number(high)):
                    raise fail(
                        f"{where}: {kind} needs numeric low and high, got low={low!r} high={high!r}"
                    )
                if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
                    raise fail(f"{where}: int needs integer low and high")
                if key_spec.kind is not (int if kind == "int" else float) and not (
                    kind == "int" and key_spec.kind is float
                ):
                    raise fail(
                        f"{where}: type {kind} does not fit config key {key!r} "
                        f"({key_spec.kind.__name__})"
                    )
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
                raise fail(
                    f"{where}: unknown distribution type {kind!r}; expected int, "
                    f"float or categorical"
                )
        except config_mod.ConfigError as e:
            raise fail(f"{where}: {e}") from None
        when = spec.get("when")
        if when is not None:
            if not isinstance(when, dict) or len(when) != 1:
                raise fail(
                    f"{where}: when must name one parent, like "
                    f"{{when: {{beta_schedule: cyclical}}}}"
                )
            ((parent, values),) = when.items()
            if parent not in out:
                raise fail(
                    f"{where}: its parent {parent!r} is not a searched parameter defined above it"
                )
            if out[parent]["type"] != "categorical":
                raise fail(f"{where}: its parent {parent!r} must be categorical")
            values = values if isinstance(values, list) else [values]
            bad = [v for v in values if v not in out[parent]["choices"]]
            if bad:
                raise fail(
                    f"{where}: when {parent} in {bad}, but {parent}'s choices are "
                    f"{out[parent]['choices']}"
                )
            clean["when"] = {parent: values}
        out[key] = clean
    return out
