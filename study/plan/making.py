"""Planning a study: `fsvae-study run`'s flags checked and turned into a Plan
(study/plan/plan.py) before any process or record exists, so that a bad flag, space, data path
or address fails in a second.

Planning imports neither Ray nor MLflow.
"""

from __future__ import annotations

import copy
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

import search_spaces
from fsvae import config as config_mod
from fsvae import data as data_mod
from study.errors import StudyError
from study.plan import storage as locations
from study.plan.options import StudyOptions
from study.plan.plan import DEFAULT_STORAGE, Plan, default_optuna_storage
from study.plan.storage import database_url, default_tracking_uri
from study.secrets import redact, redact_words


def make_plan(
    space: str | search_spaces.Space, data: str, options: StudyOptions | None = None, **changes: Any
) -> Plan:
    """Everything a study needs, validated; StudyError/SpaceError/ConfigError/DataError name
    the bad input. `space` is a YAML file, a shipped space's name or a parsed Space;
    `options` (and `changes` to them, by name) are study/plan/options.StudyOptions, which
    are `fsvae-study run`'s flags (docs/studies.md)."""
    opts = StudyOptions.of(options, **changes)
    name, storage, tracking_uri = opts.name, opts.storage, opts.tracking_uri
    num_samples, preset, address = opts.num_samples, opts.preset, opts.address
    cpus_per_trial, gpus_per_trial = opts.cpus_per_trial, opts.gpus_per_trial
    max_concurrent, max_failures = opts.max_concurrent, opts.max_failures
    infra_retries, asha, log_model = opts.infra_retries, opts.asha, opts.log_model
    cache_dir, no_cache = opts.cache_dir, opts.no_cache
    sp = (
        copy.deepcopy(space)
        if isinstance(space, search_spaces.Space)
        else search_spaces.load(space)
    )
    sp = apply_overrides(sp, config_mod.parse_overrides(opts.overrides or []))
    sp = apply_grid(sp, opts.grid or [])
    location = locations.resolve(storage or DEFAULT_STORAGE)
    name = name or sp.name
    if "/" in name or not name.strip():
        raise StudyError(f"--name {name!r}: expected a non-empty name without '/'")
    data_root = Path(data).expanduser().resolve()
    data_mod.detect_layout(data_root)  # DataError now rather than in every trial
    _check_counts(
        sp, num_samples, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures, infra_retries
    )
    if log_model and no_cache:
        raise StudyError(
            "--log-model needs the stage cache, where the best trial's backbone "
            "is kept; drop --no-cache"
        )
    if asha and len(sp.objectives) > 1:
        raise StudyError(
            f"--asha stops trials on one metric; this space optimises "
            f"{sp.objectives}: run it without --asha"
        )
    preset = preset or sp.preset
    base = {**sp.fixed, "data": str(data_root)}
    config_mod.resolve(base, preset=preset)
    address = reachable(address or os.environ.get("RAY_ADDRESS"))
    uri = _tracking_uri(tracking_uri, location)
    optuna_url = _optuna_storage(opts.optuna_storage, location, sp.kind)
    if address:
        from study.plan.storage import check_record_for_cluster

        check_record_for_cluster(uri, optuna_url)
    return Plan(
        name=name,
        storage=location,
        space=sp.to_dict(),
        space_path=str(Path(sp.path).resolve()),
        space_text=sp.text,
        data=str(data_root),
        preset=preset,
        base=base,
        tracking_uri=uri,
        optuna_storage=optuna_url,
        cache_dir=_cache_dir(cache_dir, no_cache, location),
        address=address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_concurrent=max_concurrent,
        max_failures=max_failures,
        infra_retries=infra_retries,
        asha=bool(asha),
        log_model=bool(log_model),
        tags=dict(opts.tags or {}),
        command=" ".join(shlex.quote(a) for a in redact_words(sys.argv)),
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
        data_content=data_mod.content_fingerprint(data_root),
    )


def _check_counts(
    sp: search_spaces.Space,
    num_samples,
    cpus_per_trial,
    gpus_per_trial,
    max_concurrent,
    max_failures,
    infra_retries,
) -> None:
    """The numeric flags, each in its range (num_samples is set on the space)."""
    if num_samples is not None:
        if sp.kind != "optuna":
            raise StudyError("--num-samples applies to optuna spaces; a grid's size is its grid")
        if num_samples < 1:
            raise StudyError(f"--num-samples must be at least 1, got {num_samples}")
        sp.num_samples = num_samples
    for flag, value in (("--cpus-per-trial", cpus_per_trial), ("--gpus-per-trial", gpus_per_trial)):
        if value is not None and value < 0:
            raise StudyError(f"{flag} must be >= 0, got {value}")
    if max_concurrent is not None and max_concurrent < 1:
        raise StudyError(f"--max-concurrent must be at least 1, got {max_concurrent}")
    for flag, value in (("--max-failures", max_failures), ("--infra-retries", infra_retries)):
        if value < 0:
            raise StudyError(f"{flag} must be >= 0, got {value}")


def _tracking_uri(given: str | None, location: str) -> str:
    if given:
        return given
    if locations.is_uri(location):
        raise StudyError(
            "with a URI --storage, give --tracking-uri (an MLflow server); the "
            "embedded SQLite store needs a local path"
        )
    return default_tracking_uri(Path(location))


def _optuna_storage(given: str | None, location: str, kind: str) -> str | None:
    """Where a search's Optuna studies live. Only the driver writes there, so a SQLite file
    is safe on a cluster as long as it is on the driver's disk: beside a local storage, or
    on the driver's own disk when the storage is an object store (SQLite needs a POSIX
    filesystem; a network one is unsafe for it). Losing it loses nothing: it is rebuilt
    from MLflow (study/search/sync.py)."""
    if kind != "optuna":
        return None
    if given:
        return database_url(given)
    return default_optuna_storage(location)


def _cache_dir(given: str | None, no_cache: bool, location: str) -> str | None:
    if no_cache and given:
        raise StudyError("--no-cache and --cache-dir contradict each other; choose one")
    if no_cache:
        return None
    if given:
        return str(Path(given).expanduser().resolve())
    if locations.is_uri(location):
        raise StudyError(
            f"--storage {redact(location)} is not a filesystem path, so the stage "
            f"cache cannot live there: give --cache-dir on a shared filesystem, "
            f"or --no-cache"
        )
    return str(Path(location) / "cache")


def reachable(address: str | None) -> str | None:
    """A host:port address must answer before anything starts: ray.init would otherwise
    retry a wrong address for minutes. ("auto" and ray:// are left to Ray.)"""
    if not address or address == "auto" or "://" in address:
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(
            f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379), "
            f"auto, or ray://HOST:PORT"
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise StudyError(
            f"cannot join the Ray cluster at {address}: nothing answers there "
            f"({e.strerror or e}); is `ray start --head --port={port}` running "
            f"on {host}?"
        ) from None
    return address


def apply_overrides(space: search_spaces.Space, overrides: dict) -> search_spaces.Space:
    """`--set k=v` fixes k for every trial, replacing k wherever the space varied it."""
    for key, value in overrides.items():
        space.fixed[key] = value
        space.grid.pop(key, None)
        space.strata.pop(key, None)
        for v in space.variants:
            v.pop(key, None)
        if key in space.params:
            dependants = [k for k, p in space.params.items() if key in (p.get("when") or {})]
            if dependants:
                raise StudyError(
                    f"--set {key}=...: searched parameters {dependants} depend "
                    f"on {key}; fix those too or edit the space"
                )
            space.params.pop(key)
    if space.kind == "grid":
        unique = []
        for v in space.variants:
            if v not in unique:
                unique.append(v)
        space.variants = unique
    elif not space.params:
        raise StudyError("every searched parameter was fixed by --set: nothing left to search")
    return space


def apply_grid(space: search_spaces.Space, pairs: list[str]) -> search_spaces.Space:
    """`--grid k=a,b` makes k a grid dimension with those values (grid spaces only)."""
    if pairs and space.kind != "grid":
        raise StudyError(
            "--grid applies to grid spaces; for an optuna space edit its params or strata"
        )
    for pair in pairs:
        if "=" not in pair:
            raise StudyError(f"--grid expects KEY=V1,V2,..., got {pair!r}")
        key, text = pair.split("=", 1)
        values = [config_mod.parse_value(key.strip(), v.strip()) for v in text.split(",")]
        space.fixed.pop(key.strip(), None)
        for v in space.variants:
            v.pop(key.strip(), None)
        space.grid[key.strip()] = list(dict.fromkeys(values))
    return space
