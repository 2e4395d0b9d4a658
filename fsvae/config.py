"""A trial's config from the key registry: presets, `--set` overrides, validation.

The keys themselves (default, type, range, doc, stage) are in fsvae.config_keys; this
module re-exports them, so that `fsvae.config` is the one name callers import. Defaults are
the paper's settings where the paper gives them (Park 2021, Sec. 3-4) and documented
choices where it does not (see docs/method.md).
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, SupportsInt, cast

# Re-exported: callers read the key registry and the method groups as fsvae.config.<name>.
from fsvae.config_keys import (  # noqa: F401
    BACKBONE_METHODS,
    BETA_SCHEDULES,
    KEYS,
    METHODS,
    RESAMPLING_METHODS,
    VAE_METHODS,
    Key,
)
from fsvae.errors import ConfigError  # noqa: F401  (re-exported)

# The paper's settings are the defaults; `paper` is therefore the empty override.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # Sized for 2 CPU cores on `fsvae-study demo-data` output: well under a minute a trial.
    # ResNet-18 (512-d features) because a ResNet-50 from scratch learns little in seconds.
    "tiny": {
        "backbone": "resnet18",
        "backbone_weights": "none",
        "image_size": 32,
        "backbone_epochs": 6,
        "backbone_batch_size": 32,
        "backbone_lr": 0.01,
        "vae_epochs": 30,
        "vae_encoder_hidden": 256,
        "vae_decoder_hidden": 256,
        "latent_dim": 32,
        "vae_batch_size": 64,
        "beta_warmup_epochs": 27,
        "classifier_epochs": 10,
        "classifier_batch_size": 64,
        "n_f": 5,
    },
}


def parse_value(key: str, text: str) -> Any:
    """Turns the text of `--set key=text` into the key's type."""
    spec = _spec(key)
    if spec.nullable and text.strip().lower() in ("none", "null", ""):
        return None
    try:
        if spec.kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if spec.kind is int:
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        return spec.kind(text)
    except ValueError:
        raise ConfigError(
            f"config key {key!r}: cannot read {text!r} as {spec.kind.__name__}"
        ) from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["n_f=5", "method=crt"]` -> `{"n_f": 5, "method": "crt"}`, typed and checked."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        key, text = pair.split("=", 1)
        key = key.strip()
        out[key] = parse_value(key, text.strip())
    return out


def resolve(overrides: dict[str, Any] | None = None, preset: str = "paper") -> dict[str, Any]:
    """Defaults <- preset <- overrides, validated. Raises ConfigError naming the bad key."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    config = {k: spec.default for k, spec in KEYS.items()}
    config.update(PRESETS[preset])
    for key, value in (overrides or {}).items():
        _spec(key)
        config[key] = value
    return validate(config)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Checks every key and value; returns a new dict with ints/floats normalised."""
    out = {}
    for key, value in config.items():
        spec = _spec(key)
        out[key] = _check_value(key, spec, value)
    missing = sorted(set(KEYS) - set(out))
    if missing:
        raise ConfigError(f"config is missing keys {missing}")
    return out


def active_config(config: dict[str, Any]) -> dict[str, Any]:
    """The keys that matter for this config (inactive conditional keys dropped)."""
    return {k: v for k, v in config.items() if KEYS[k].active(config)}


def stage_keys(config: dict[str, Any], stage: str) -> dict[str, Any]:
    """Active keys of one stage (used for cache keys)."""
    return {k: v for k, v in active_config(config).items() if KEYS[k].stage == stage}


# Beyond its own stage's keys (data, split, backbone), what decides the fine-tuned backbone
# and its features: the best-epoch metric, the numeric precision (which `device` resolves
# for `auto`), and, for oversample, the sampling factor.
_BACKBONE_STAGES = ("data", "split", "backbone")
_BACKBONE_EXTRA = ("selection_metric", "precision", "device", "method")


def backbone_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The config values that decide the fine-tuned backbone and its features. With the
    data's content hash and the weights file's identity (which only a trial reads) they make
    the backbone's cache key; grid ordering and a search's shared build use the same set.
    `precision` is the key's value here; a trial puts the precision it resolved on its
    device in its place."""
    return {
        "load_size": config["load_size"],
        "split": {
            "n_f": config["n_f"],
            "num_minority": config["num_minority"],
            "seed": config["seed"],
        },
        "backbone": stage_keys(config, "backbone"),
        "oversample": config["sampling_factor"] if config["method"] == "oversample" else 1,
        "selection_metric": config["selection_metric"],
        "precision": config["precision"],
    }


def decides_backbone(key: str, config: dict[str, Any]) -> bool:
    """Whether a trial-to-trial change of `key` can change the backbone of `config`'s trials
    (`method` always can: to or from oversample). Errs towards True: data keys and `device`
    count although the data's content hash or the resolved precision may not change."""
    if key == "sampling_factor":
        return config["method"] == "oversample"
    return _spec(key).stage in _BACKBONE_STAGES or key in _BACKBONE_EXTRA


def short(value: Any) -> str:
    """A config value for a label, a console line or a table cell: a float (or a float as
    MLflow stores it, a string) to 4 significant digits; anything else as str()."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and "." in value:
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value
    return str(value)


def describe() -> str:
    """Markdown table of every key: docs/config-keys.md is generated from it."""
    rows = ["| key | default | tiny | meaning |", "|---|---|---|---|"]
    for key, spec in KEYS.items():
        choices = f" One of: {', '.join(map(str, spec.choices))}." if spec.choices else ""
        tiny = PRESETS["tiny"].get(key, "")
        rows.append(f"| `{key}` | {spec.default} | {tiny} | {spec.doc}.{choices} |")
    return "\n".join(rows)


def check_key(key: str) -> Key:
    """The key's spec; ConfigError (with close matches) for an unknown key."""
    return _spec(key)


def check_value(key: str, value: Any) -> Any:
    """The value normalised for the key; ConfigError naming key and expectation if bad."""
    return _check_value(key, _spec(key), value)


def _spec(key: str) -> Key:
    if key not in KEYS:
        close = difflib.get_close_matches(key, KEYS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r}{hint} (see docs/config-keys.md)")
    return KEYS[key]


def _check_value(key: str, spec: Key, value: Any) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"config key {key!r}: a value is required (got None)")
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if spec.kind is int:
        # numbers.Integral/Real also admit numpy scalars (e.g. from pandas or Optuna).
        if (
            isinstance(value, bool)
            or not isinstance(value, (numbers.Integral, numbers.Real))
            or (not isinstance(value, numbers.Integral) and not float(value).is_integer())
        ):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        value = int(cast(SupportsInt, value))  # numbers.Real lacks __int__; floats have it
    elif spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
    elif spec.kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(
            f"config key {key!r}: {value!r} is not one of {', '.join(map(str, spec.choices))}"
        )
    if spec.low is not None and value < spec.low:
        raise ConfigError(f"config key {key!r}: {value!r} is below the minimum {spec.low}")
    if spec.high is not None and value > spec.high:
        raise ConfigError(f"config key {key!r}: {value!r} is above the maximum {spec.high}")
    return value
