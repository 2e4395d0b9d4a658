"""A study's options, declared once: each with its type, default and help. `fsvae-study
run`'s flags (fsvae_study/studies.py), `run_study`'s keywords and `make_plan`'s options are
all made from `StudyOptions` (docs/studies.md#running-a-study).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from study.errors import StudyError


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple | None = None,
    inherit: bool = False,
    cli: bool = True,
) -> Any:
    """A field of StudyOptions. `flag`: its command-line name (default `--name-with-dashes`);
    `inherit`: a confirmation keeps the search's value unless given (fsvae-study confirm);
    `cli`: False for a keyword with no flag."""
    meta = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "choices": choices,
        "inherit": inherit,
        "cli": cli,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


STORAGE_HELP = (
    "Ray results, cache and default MLflow store: a local folder (default "
    "./fsvae-studies) or a shared path on a cluster"
)
TRACKING_HELP = (
    "MLflow tracking URI (default: sqlite file <storage>/mlflow.db; "
    "http://host:port for a server, required with an s3:// storage)"
)
GPU_DEFAULT = "the space's resources, else 0.25 where the cluster has GPUs, 0 where it has none"


@dataclass
class StudyOptions:
    """How to run a study, beside its space and data: where it lives and is recorded, what
    it changes in the space, how its trials are resourced, retried and stopped."""

    name: str | None = option(None, "study name (default: the space's name)")
    storage: str | None = option(None, STORAGE_HELP)
    tracking_uri: str | None = option(None, TRACKING_HELP)
    optuna_storage: str | None = option(
        None,
        "Optuna searches: the database of their Optuna studies (default: sqlite "
        "<storage>/optuna.db; with an s3:// storage, a file on this machine's disk)",
        metavar="URL",
    )
    num_samples: int | None = option(
        None, "Optuna: trials per stratum (overrides the space's num_samples)"
    )
    preset: str | None = option(
        None,
        "config preset under the space's values (default: the space's)",
        choices=("paper", "tiny"),
    )
    overrides: list[str] = option(
        [],
        "fix a config key for every trial, wherever the space varied it (repeatable)",
        flag="--set",
        metavar="KEY=VALUE",
    )
    grid: list[str] = option(
        [],
        "grid spaces: replace (or add) one grid dimension, e.g. --grid seed=0,1,2 (repeatable)",
        metavar="KEY=V1,V2,...",
    )
    address: str | None = option(
        None, "join an existing Ray cluster (default: RAY_ADDRESS, else start a local Ray)"
    )
    cpus_per_trial: float | None = option(
        None,
        "CPUs per trial, also its torch threads (default: the space's resources, else 1)",
        inherit=True,
    )
    gpus_per_trial: float | None = option(
        None, f"GPU fraction per trial (default: {GPU_DEFAULT})", inherit=True
    )
    max_concurrent: int | None = option(
        None, "trials at once (default: as many as the resources allow)", inherit=True
    )
    max_failures: int = option(
        0,
        "retries of any failing trial, its own errors included, before it counts as failed",
        inherit=True,
    )
    infra_retries: int = option(
        2,
        "retries of a trial whose worker process or node died, or that could not reach MLflow",
        inherit=True,
    )
    asha: bool = option(False, "early-stop weak trials with ASHA (stage-3 epochs as time)")
    cache_dir: str | None = option(None, "stage cache (default: <storage>/cache)")
    no_cache: bool = option(False, "compute every stage in every trial")
    log_model: bool = option(
        False,
        "when the study is complete, log the best trial's model "
        "to its parent run (docs/mlflow.md#the-best-model)",
    )
    tags: dict[str, str] = option(
        {}, "tags for the study's parent run (a confirmation's link to its search)", cli=False
    )

    @classmethod
    def of(cls, options: StudyOptions | None = None, **changes: Any) -> StudyOptions:
        """`options` (default: every default) with `changes`; a StudyError names an unknown
        option and the one meant."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in changes:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1)
                raise StudyError(
                    f"unknown study option {key!r}"
                    + (
                        f": did you mean {near[0]!r}?"
                        if near
                        else f"; expected one of {', '.join(names)}"
                    )
                )
        return dataclasses.replace(options or cls(), **changes)


def fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(StudyOptions))


def _default(f: dataclasses.Field[Any]) -> Any:
    """An option's default: its value, or a fresh copy of its list or dict (`option`)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"study option {f.name!r} has no default")


def add_flags(
    parser: argparse.ArgumentParser, names: list[str], inherit: str | None = None
) -> None:
    """The flags of the options `names` (in that order). With `inherit` (say "the search"),
    an inheritable option's default is that study's: the flag is left None unless given."""
    by_name = {f.name: f for f in fields()}
    for name in names:
        f = by_name[name]
        meta = f.metadata
        flag = meta["flag"] or "--" + name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": name, "help": meta["help"]}
        default = _default(f)
        if inherit and meta["inherit"]:
            default = None
            kwargs["help"] = meta["help"].split(" (default")[0] + f" (default: as {inherit} ran)"
        elif not isinstance(default, (bool, list)) and default is not None:
            kwargs["help"] += f" (default: {default})"
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
        elif isinstance(default, list):
            kwargs.update(action="append", default=None)
        else:
            kwargs.update(type=_scalar(str(f.type)), default=default)  # f.type: text here
        for key in ("metavar", "choices"):
            if meta[key] is not None:
                kwargs[key] = meta[key]
        parser.add_argument(flag, **kwargs)


def from_args(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options among `names` that a parsed command line gave (lists: [] when absent)."""
    out = {}
    for name in names:
        value = getattr(args, name)
        out[name] = [] if value is None and name in ("overrides", "grid") else value
    return out


def to_argv(values: dict[str, Any]) -> list[str]:
    """The flags that give these options (those that differ from their defaults), as
    `fsvae-study run` takes them: what a job submitted elsewhere runs."""
    out: list[str] = []
    for f in fields():
        if not f.metadata["cli"] or f.name not in values:
            continue
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        value = values[f.name]
        default = _default(f)
        if value is None or value == default:
            continue
        if isinstance(default, bool):
            out.append(flag)
        elif isinstance(default, list):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def _scalar(annotation: str) -> Callable[[str], Any]:
    """The argparse type of an annotation written as text ("float | None" -> float)."""
    for name, kind in (("float", float), ("int", int)):
        if annotation.startswith(name):
            return kind
    return str


def with_options(func: Callable) -> Callable:
    """`func(..., options=None, **changes)` shown with every StudyOptions field as a typed
    keyword (its signature, for help() and notebooks)."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    for f in fields():
        default = _default(f)
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type
            )
        )
    cast(Any, func).__signature__ = sig.replace(parameters=params)  # what inspect reads
    return func


NAMES = [f.name for f in fields() if f.metadata["cli"]]  # `fsvae-study run`'s, in order
RESOURCES = [
    "address",
    "cpus_per_trial",
    "gpus_per_trial",
    "max_concurrent",
    "max_failures",
    "infra_retries",
]
INHERITED = tuple(f.name for f in fields() if f.metadata["inherit"])  # a confirmation's
# A confirmation (`fsvae-study confirm`) reruns a search's winners on new seeds: by default
# the CONFIRM_SEEDS after the largest seed the search used.
CONFIRM_SEEDS = 5
SEEDS_FORM = "comma-separated seeds and ranges, e.g. 5-9 or 5,7,10-12"
