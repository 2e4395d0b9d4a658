"""A search's finished trials ranked per stratum by a validation objective: which
configurations a confirmation reruns, and the rank its table shows beside each.

A configuration is what a trial chose: its values of the stratum keys and of the searched
keys (its MLflow params, as strings; a conditional key it did not use is absent). Two trials
that chose the same values tried one configuration.
"""
from __future__ import annotations

import pandas as pd

from results.labels import stratum_key
from results.runs import one_run_per_trial, varying
from results.store import Study


def configuration_keys(search: Study) -> list[str]:
    """The keys that tell the search's configurations apart: its strata, then its searched
    keys (space.json's params, else the keys that vary between its finished runs)."""
    searched = search.searched
    if searched is None:
        searched = varying(search.trials[search.trials["status"] == "FINISHED"])
    return list(dict.fromkeys([*search.strata, *sorted(searched)]))


def configuration(config: dict[str, str], keys: list[str]) -> tuple:
    """A run's configuration: ((key, value), ...) for the keys it logged, in `keys` order."""
    return tuple((k, config[k]) for k in keys if k in config)


def ranked(search: Study, objective: str, mode: str) -> pd.DataFrame:
    """The search's trials counted once each (results.runs.one_run_per_trial), FINISHED
    with a value of `objective`, ranked within each stratum from 1 (the best; ties: the
    earlier trial). Columns: the trial frame's (store.Study.trials), `rank` and
    `configuration`; ordered by stratum, then rank."""
    trials, _ = one_run_per_trial(search.trials)
    ok = trials[trials["status"] == "FINISHED"]
    ok = ok[ok[objective].notna()] if objective in ok else ok.iloc[0:0]
    keys = configuration_keys(search)
    parts = []
    for stratum in sorted(set(ok["stratum"]), key=stratum_key):
        group = ok[ok["stratum"] == stratum].sort_values("start_time", kind="stable")
        group = group.sort_values(objective, ascending=(mode == "min"), kind="stable")
        parts.append(group.assign(rank=range(1, len(group) + 1)))
    out = pd.concat(parts, ignore_index=True) if parts else ok.assign(rank=[])
    out["configuration"] = [configuration(c, keys) for c in out["config"]]
    return out


def top(ranking: pd.DataFrame, k: int) -> pd.DataFrame:
    """The best `k` configurations of each stratum, each at its best trial's rank (a
    configuration two trials tried is one configuration)."""
    distinct = ranking.drop_duplicates(["stratum", "configuration"], keep="first")
    return distinct.groupby("stratum", sort=False).head(k).reset_index(drop=True)
