"""Reading a confirmation: its table, each rerun configuration as its mean and 95% interval
over the new seeds on validation and test, beside its rank in the search.

results.confirm_study runs the confirmation; this module reads what it wrote, and ranks
the search's configurations for both (`ranked`, `top`), so that the configurations it
reran are the ranks this table shows.

A confirmation is a grid study whose parent run names its search (tag fsvae.confirms). Its
runs are matched to the search's trials by configuration: the stratum keys and the
searched keys (a configuration is what a trial chose: its MLflow params, as strings; a
conditional key it did not use is absent; two trials that chose the same values tried one
configuration). A configuration's rank is its best trial's place among the stratum's
finished trials of the search, in the search's own order (study.record.read.order: by
its objectives in turn, then the earlier trial), which is also how `fsvae-study confirm`
picked the configurations to rerun. One sentence per stratum says whether the search's
best (rank 1) is still the best by its mean validation objective over the new seeds.
"""

from __future__ import annotations

import math

import pandas as pd

from fsvae.config import short
from results.errors import ResultsError
from results.store import Study, load_study
from results.table import (
    PERCENT,
    Table,
    few_seeds_note,
    no_finished,
    num_key,
    status_notes,
    stratum_key,
    summarize,
    uncounted_note,
    varying,
)
from study.record.read import candidates, goals, one_run_per_trial, order

SETS = ("val", "test")


def confirm_table(study: Study, metrics: tuple[str, ...]) -> Table:
    """Rows: the confirmation's configurations by stratum and rank in the search; cells:
    mean, std, n and 95% interval over seeds of each metric on val and test (percent)."""
    search = _search_of(study)
    shown = tuple(dict.fromkeys([study.objective[len("val_") :], *metrics]))
    ranking = ranked(search, search.objective, search.mode)
    runs, uncounted = one_run_per_trial(study.trials)
    cells = _cells(_finished(study, runs, shown), ranking, search, shown, study.mode)
    table = Table(
        study=study,
        metric_set="val+test",
        cells=cells,
        rows=list(dict.fromkeys(cells["row"])),
        n_fs=[],
        metrics=shown,
        notes=[_how(study, search), *status_notes(runs), *search.notes],
    )
    few = few_seeds_note(cells)
    if few:
        table.notes.append(few)
    table.summaries = [
        still_best(stratum, cells, ranking, study) for stratum in dict.fromkeys(cells["stratum"])
    ]
    if uncounted:
        table.notes.append(uncounted_note(uncounted))
    unmatched = sorted(set(cells.loc[cells["rank"].isna(), "row"]))
    if unmatched:
        table.notes.append(
            f"Not among the search's finished trials (no rank): {', '.join(unmatched)}."
        )
    return table


def _cells(
    finished: pd.DataFrame, ranking: pd.DataFrame, search: Study, shown: tuple[str, ...], mode: str
) -> pd.DataFrame:
    """The tidy cells, grouped by configuration, ordered by stratum and rank."""
    keys = configuration_keys(search)
    finished = finished.assign(configuration=[configuration(c, keys) for c in finished["config"]])
    records = []
    for conf, group in finished.groupby("configuration", sort=False):
        records += _records(conf, group, ranking, search, shown)
    records.sort(key=lambda r: (stratum_key(r["stratum"]), r["rank"] is None, r["rank"] or 0))
    cells = pd.DataFrame(records)
    cells["best"] = _best(cells, shown[0], mode)
    return cells


def _search_of(study: Study) -> Study:
    """The search a confirmation names; ResultsError if it is not in the same store."""
    if study.confirms is None:
        raise ResultsError(f"experiment {study.name!r} is not a confirmation: it names no search")
    try:
        return load_study(study.confirms, study.tracking_uri)
    except ResultsError as e:
        raise ResultsError(
            f"experiment {study.name!r} confirms the search "
            f"{study.confirms!r}, which cannot be read: {e}"
        ) from None


def _finished(study: Study, runs: pd.DataFrame, shown: tuple[str, ...]) -> pd.DataFrame:
    """FINISHED runs with every shown metric on val and test."""
    cols = [f"{s}_{m}" for s in SETS for m in shown]
    ok = runs[runs["status"] == "FINISHED"]
    if ok.empty:
        raise no_finished(study)
    missing = [c for c in cols if c not in ok]
    if missing:
        raise ResultsError(f"experiment {study.name!r}: no finished run has {', '.join(missing)}")
    return ok[ok[cols].notna().all(axis=1)]


def _records(
    conf: tuple, group: pd.DataFrame, ranking: pd.DataFrame, search: Study, shown: tuple[str, ...]
) -> list[dict]:
    """One configuration's cells: per set and metric (val first, the objective first in
    each), its statistics over the seeds, and the value its best trial had in the search."""
    trial, base = _origin(conf, ranking, search)
    seeds = [c.get("seed", "") for c in group["config"]]
    order = sorted(range(len(group)), key=lambda i: num_key(seeds[i]))
    group = group.iloc[order]
    base.update(seeds=";".join(seeds[i] for i in order), run_ids=";".join(group["run_id"]))
    out = []
    for s in SETS:
        for m in shown:
            before = math.nan if trial is None else trial.get(f"{s}_{m}", math.nan)
            out.append(
                {
                    **base,
                    "metric_set": s,
                    "metric": m,
                    **summarize((group[f"{s}_{m}"] * 100.0).to_numpy(), PERCENT),
                    "search_value": float(before) * 100.0,
                }
            )
    return out


def _origin(conf: tuple, ranking: pd.DataFrame, search: Study) -> tuple[pd.Series | None, dict]:
    """A configuration's best trial in the search (None: no finished trial tried it), and
    what its cells say of it: stratum, row label, rank (of how many), trial, params."""
    found = ranking[ranking["configuration"] == conf].head(1)
    trial = None if found.empty else found.iloc[0]
    if trial is None:
        values = dict(conf)
        stratum = ",".join(f"{k}={values[k]}" for k in search.strata if k in values)
        rank, row = None, f"{stratum or '(all)'} not in the search"
    else:
        stratum, rank = trial["stratum"], int(trial["rank"])
        row = f"{stratum or '(all)'} rank {rank}"
    return trial, {
        "section": "confirm",
        "stratum": stratum,
        "row": row,
        "rank": rank,
        "of": int((ranking["stratum"] == stratum).sum()),
        "trial_key": "" if trial is None else trial["trial_key"],
        "search_run_id": "" if trial is None else trial["run_id"],
        "params": "; ".join(f"{k}={short(v)}" for k, v in conf if k not in search.strata),
    }


def _best(cells: pd.DataFrame, metric: str, mode: str) -> pd.Series:
    """True on every cell of the configuration with the best mean validation objective
    (`metric`) of its stratum, among those the search ranked (ties: the better rank)."""
    val = cells[
        (cells["metric_set"] == "val") & (cells["metric"] == metric) & cells["rank"].notna()
    ]
    means = val.groupby("stratum", sort=False)["mean"]
    picked = means.idxmax() if mode == "max" else means.idxmin()
    return cells["row"].isin(set(val.loc[picked, "row"]))


def _how(study: Study, search: Study) -> str:
    """The note that says what a row and a cell are."""
    used = sorted({c.get("seed") for c in search.trials["config"] if c.get("seed")}, key=num_key)
    by = ", then ".join(f"{o} ({m})" for o, m in search.goals)[:-1]
    return (
        f"Confirmation of the search {search.name!r}: its best configurations per "
        f"stratum by {by}; ties: the lowest trial number), rerun "
        f"with seeds the search did not use (it used {', '.join(used) or 'none'}); a "
        f"seed redraws the minority classes and their images. Cells: mean [95% "
        f"Student-t interval, cut to [0, 100]] over the seeds, percent; rank: the "
        f"configuration's place among the stratum's finished trials of the search; "
        f"search: its value there."
    )


def still_best(stratum: str, cells: pd.DataFrame, ranking: pd.DataFrame, study: Study) -> str:
    """One plain sentence: is the search's best configuration of `stratum` still the best
    by its mean validation objective over the confirmation's seeds?"""
    objective, better = study.objective, ("higher" if study.mode == "max" else "lower")
    mine = cells[
        (cells["stratum"] == stratum)
        & (cells["metric_set"] == "val")
        & (cells["metric"] == objective[len("val_") :])
        & cells["rank"].notna()
    ]
    head = f"{stratum or '(all)'}: the search's best"
    first = ranking[(ranking["stratum"] == stratum) & (ranking["rank"] == 1)]
    if not first.empty:
        head += f" (trial {first.iloc[0]['trial_key']})"
    if mine.empty or mine["rank"].min() != 1:
        return head + " has no finished confirmation run, so whether it is still best is unknown."
    champion = mine[mine["rank"] == 1].iloc[0]
    others = mine[mine["rank"] != 1]
    if others.empty:
        return head + (
            f" was the only configuration confirmed here (mean {objective} "
            f"{champion['mean']:.2f} over {champion['n']} seeds), so there is "
            f"nothing to compare it with."
        )
    sign = 1 if study.mode == "max" else -1
    rival = others.loc[(others["mean"] * sign).idxmax()]
    what = (
        f"{champion['mean']:.2f} ({champion['n']} seeds) against "
        f"{rival['mean']:.2f} ({rival['n']} seeds) for rank {int(rival['rank'])} "
        f"(trial {rival['trial_key']})"
    )
    if sign * rival["mean"] > sign * champion["mean"]:
        text = (
            f"{head} is no longer the best: rank {int(rival['rank'])} (trial "
            f"{rival['trial_key']}) has the {better} mean {objective}, "
            f"{rival['mean']:.2f} ({rival['n']} seeds) against {champion['mean']:.2f} "
            f"({champion['n']} seeds)"
        )
    elif rival["mean"] == champion["mean"]:
        text = f"{head} is still the best by mean {objective}, tied: {what}"
    else:
        text = f"{head} is still the best by mean {objective}: {what}"
    return text + _overlap(champion, rival) + "."


def _overlap(a: pd.Series, b: pd.Series) -> str:
    """'; their 95% intervals overlap, ...' when they do (both need two seeds or more)."""
    if a["n"] < 2 or b["n"] < 2:
        return ""
    if a["ci95_low"] <= b["ci95_high"] and b["ci95_low"] <= a["ci95_high"]:
        return "; their 95% intervals overlap, so these seeds do not separate the two"
    return ""


# -- the search's configurations, ranked ------------------------------------------------------


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
    """The search's trials counted once each, FINISHED with a value of `objective` (several:
    joined by commas, as the parent run tags them), ranked within each stratum from 1 in
    the order of study.record.read. Columns: the trial frame's (store.Study.trials), `rank`
    and `configuration`; ordered by stratum, then rank."""
    trials, _ = one_run_per_trial(search.trials)
    by = goals(objective, mode)
    ok = candidates(trials, by)
    keys = configuration_keys(search)
    parts = []
    for stratum in sorted(set(ok["stratum"]), key=stratum_key):
        group = order(ok[ok["stratum"] == stratum], by)
        parts.append(group.assign(rank=range(1, len(group) + 1)))
    out = pd.concat(parts, ignore_index=True) if parts else ok.assign(rank=[])
    out["configuration"] = [configuration(c, keys) for c in out["config"]]
    return out


def top(ranking: pd.DataFrame, k: int) -> pd.DataFrame:
    """The best `k` configurations of each stratum, each at its best trial's rank (a
    configuration two trials tried is one configuration)."""
    distinct = ranking.drop_duplicates(["stratum", "configuration"], keep="first")
    return distinct.groupby("stratum", sort=False).head(k).reset_index(drop=True)
