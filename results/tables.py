"""`fsvae-study table`: the paper's Table 2 (and the ablations and searches around it) rebuilt
from a study's MLflow runs, as markdown, LaTeX (booktabs) or tidy CSV.

What a number in the table is (the table's notes say the same):
- Only trial runs (tag fsvae.role=trial) that FINISHED and carry the metric are used. FAILED,
  KILLED (stopped early) and still RUNNING runs are counted in a note, never averaged in.
- Values are percent. One cell pools the seeds of ONE configuration: runs are grouped by every
  MLflow param (the trial's active config keys) except `seed` and the BOOKKEEPING keys, so two
  configurations are never averaged together. Runs of one method that differ in another key
  become separate rows labelled with the keys that differ, e.g. `vae x30 [latent_dim=64]`.
- Several seeds: mean ± sample std (ddof=1) and n; the CSV adds the 95% Student-t interval
  mean ± t(0.975, n-1)·std/sqrt(n), left empty for n < 2 (one seed has no spread to use).
- Duplicates (the same configuration and seed finished twice, e.g. a study run twice under
  one name): the run that started last is kept, the others are named in a note.
- Optuna studies: one row per stratum, the trial best by the study's *validation* objective
  (parent tags fsvae.objective / fsvae.mode), shown with its test metrics, so the test set
  never picks a configuration.
- `--compare A:B`: per-seed paired differences A - B (see `parse_compare`).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from io import StringIO
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
from scipy import stats

from fsvae.config import METHODS
from study.errors import StudyError
from study.schema import PARENT, ROLE, default_tracking_uri

# Params that say where or how fast a trial ran, not what it computed: never split rows.
BOOKKEEPING = frozenset({"data", "data_workers", "device"})
METRICS = ("acc_h", "acc")  # the paper's two columns per n_f
NAMED = ("method", "sampling_factor", "n_f", "seed")  # keys a row label or column already shows
DEFAULT_OBJECTIVE, DEFAULT_MODE = "val_acc_h", "max"
COMPARE_FORM = ("A:B where A and B are METHOD or METHOD@SAMPLING_FACTOR, "
                "e.g. vae:crt or vae@50:oversample@50")
PAPER_SOURCE = "Park (2021), Journal of KIIT 19(2), Table 2"


class ResultsError(StudyError):
    """A table or figure cannot be made; the message names what is missing and what exists."""


# -- reading MLflow ----------------------------------------------------------------------


@dataclass
class Study:
    """One experiment's trial runs and its study settings, as the tables and figures use them.

    `trials` has one row per trial run: run_id, run_name, status, start_time, stratum,
    config (dict of its MLflow params, strings) and one column per metric (no prefix).
    """

    name: str
    tracking_uri: str
    kind: str  # grid | optuna
    objective: str
    mode: str  # max | min
    strata: list[str]
    trials: pd.DataFrame
    searched: list[str] | None = None  # optuna: the space's searched keys, if space.json exists
    n_other: int = 0  # runs that are neither study nor trial (not written by fsvae-study run)


def tracking_uri_from(args: argparse.Namespace) -> str:
    """--tracking-uri, else the sqlite store under --storage (default ./fsvae-studies)."""
    if getattr(args, "tracking_uri", None):
        return args.tracking_uri
    return default_tracking_uri(Path(getattr(args, "storage", None) or "fsvae-studies"))


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """mlflow.search_runs reads the global tracking URI: set it for the call, then restore."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    before = mlflow.get_tracking_uri() if utils.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def _check_store(uri: str) -> None:
    """Reading must not create an empty sqlite store where the user mistyped a path."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise ResultsError(f"no MLflow store at {path} (pass --tracking-uri, or --storage "
                               f"where the study ran)")


def load_study(experiment: str, tracking_uri: str) -> Study:
    """Reads an experiment's runs; ResultsError naming the experiments there if it is unknown."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _check_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage != "active":
        names = sorted(e.name for e in client.search_experiments())
        raise ResultsError(f"no experiment named {experiment!r} in {tracking_uri}; experiments "
                           f"there: {', '.join(names) if names else 'none'}")
    with _tracking(tracking_uri):
        runs = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="pandas")
    role = _col(runs, f"tags.{ROLE}")
    parents = runs[role == "study"].sort_values("start_time") if len(runs) else runs
    kinds = sorted(set(_col(parents, "tags.fsvae.space_kind").dropna()))
    if len(kinds) > 1:
        raise ResultsError(f"experiment {experiment!r} mixes study kinds {kinds}; a table "
                           f"needs one (run each space under its own --name)")
    objectives = sorted(set(zip(_col(parents, "tags.fsvae.objective").dropna(),
                                _col(parents, "tags.fsvae.mode").dropna())))
    if len(objectives) > 1 and kinds == ["optuna"]:
        raise ResultsError(f"experiment {experiment!r} holds searches with different "
                           f"objectives {objectives}; the best trial is undefined")
    last = parents.iloc[-1] if len(parents) else None
    study = Study(
        name=experiment, tracking_uri=tracking_uri, kind=kinds[0] if kinds else "grid",
        objective=_tag(last, "fsvae.objective") or DEFAULT_OBJECTIVE,
        mode=_tag(last, "fsvae.mode") or DEFAULT_MODE,
        strata=[s for s in (_tag(last, "fsvae.strata") or "").split(",") if s],
        trials=_trial_frame(runs[role == "trial"]),
        n_other=int((~role.isin(["study", "trial"])).sum()))
    if study.kind == "optuna" and last is not None:
        space = _space_json(tracking_uri, last["artifact_uri"])
        if space and isinstance(space.get("params"), dict):
            study.searched = sorted(space["params"])
    return study


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-missing when no run has it (search_runs drops unused columns)."""
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _tag(row: pd.Series | None, tag: str) -> str | None:
    if row is None:
        return None
    value = row.get(f"tags.{tag}")
    return value if isinstance(value, str) and value else None


def _space_json(tracking_uri: str, artifact_uri: str) -> dict | None:
    """The parent's space.json (what the search varied); None where it was not recorded."""
    try:
        if artifact_uri.startswith("file:"):
            path = Path(unquote(urlparse(artifact_uri).path)) / "space.json"
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        import mlflow

        with _tracking(tracking_uri):
            return mlflow.artifacts.load_dict(f"{artifact_uri}/space.json")
    except Exception:  # a missing or unreadable artifact only costs the searched-key list
        return None


def _trial_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial run with its params gathered into one dict (absent keys stay absent,
    so inactive keys such as sampling_factor for `plain` are not invented)."""
    params = [c for c in runs.columns if c.startswith("params.")]
    metrics = [c for c in runs.columns if c.startswith("metrics.")]
    out = pd.DataFrame({
        "run_id": _col(runs, "run_id").astype(object),
        "run_name": _col(runs, "tags.mlflow.runName").astype(object),
        "status": _col(runs, "status").astype(object),
        "start_time": _col(runs, "start_time"),
        "stratum": _col(runs, "tags.fsvae.stratum").fillna("").astype(object),
        "parent": _col(runs, f"tags.{PARENT}").astype(object),
    }, index=runs.index)
    out["config"] = [{c[len("params."):]: row[c] for c in params if isinstance(row[c], str)}
                     for _, row in runs.iterrows()]
    for c in metrics:
        out[c[len("metrics."):]] = runs[c].astype(float)
    return out.reset_index(drop=True)


# -- statistics --------------------------------------------------------------------------


def summarize(values: Sequence[float]) -> dict:
    """mean, sample std (ddof=1), n and the 95% Student-t interval of the mean.

    std and the interval are NaN for n < 2: one seed says nothing about the spread, and a
    made-up interval would look like evidence.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0, "ci95_low": math.nan,
                "ci95_high": math.nan}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": 1, "ci95_low": math.nan,
                "ci95_high": math.nan}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95_low": mean - half, "ci95_high": mean + half}


# -- grid studies: Table 2 ---------------------------------------------------------------


@dataclass
class Table:
    """What a renderer needs: tidy cells, row/column order, notes, optional comparisons."""

    study: Study
    metric_set: str
    cells: pd.DataFrame  # tidy: one row per (row, n_f, metric)
    rows: list[str]
    n_fs: list[int]
    notes: list[str] = field(default_factory=list)
    with_paper: bool = False
    comparisons: pd.DataFrame | None = None
    summaries: list[str] = field(default_factory=list)


def _num_key(value: str) -> tuple:
    """Sorts '5' < '10' < 'abc': numbers by value, then text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _method_key(method: str) -> tuple:
    """The paper's row order (plain, oversample, vae), then our ablations, then the rest."""
    return (METHODS.index(method), "") if method in METHODS else (len(METHODS), method)


def status_notes(trials: pd.DataFrame) -> list[str]:
    """The runs a table leaves out, counted by why (always shown, zeros included)."""
    counts = trials["status"].value_counts()
    failed, killed = int(counts.get("FAILED", 0)), int(counts.get("KILLED", 0))
    notes = [f"Not shown: {failed} failed run{'s' * (failed != 1)} (status FAILED), "
             f"{killed} stopped run{'s' * (killed != 1)} (status KILLED)."]
    running = int(counts.get("RUNNING", 0)) + int(counts.get("SCHEDULED", 0))
    if running:
        notes.append(f"{running} run{'s' * (running != 1)} still running, not shown.")
    return notes


def no_finished(study: Study) -> ResultsError:
    """The error for an experiment with nothing to show, saying what it does hold."""
    counts = study.trials["status"].value_counts()
    held = ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"
    other = (f"; {study.n_other} other run(s) not tagged {ROLE}=trial/study"
             if study.n_other else "")
    return ResultsError(f"experiment {study.name!r} has no finished trial runs, nothing to "
                        f"show (trial runs: {held}{other})")


def finished_runs(study: Study, metric_set: str) -> tuple[pd.DataFrame, list[str]]:
    """The runs a grid table uses, labelled, with duplicates removed; plus the notes saying
    what was left out and why.

    Columns: run_id, start_time, method, sampling_factor ('' when unused), n_f (int), seed,
    extra (sorted (key, value) pairs of every other non-bookkeeping param), row (label),
    params (the keys the label shows) and the metric columns.
    """
    trials = study.trials
    cols = [f"{metric_set}_{m}" for m in METRICS]
    notes = status_notes(trials)
    fin = trials[trials["status"] == "FINISHED"]
    if fin.empty:
        raise no_finished(study)
    has = fin[cols].notna().all(axis=1) if all(c in fin for c in cols) else \
        pd.Series(False, index=fin.index)
    if (~has).any():
        notes.append(f"{int((~has).sum())} finished run(s) without {' or '.join(cols)}, "
                     f"not shown.")
    fin = fin[has]
    if fin.empty:
        raise ResultsError(f"experiment {study.name!r}: no finished trial run has "
                           f"{' and '.join(cols)}")
    rows = []
    no_nf = 0
    for r in fin.itertuples(index=False):
        cfg = {k: v for k, v in r.config.items() if k not in BOOKKEEPING}
        if "n_f" not in cfg:
            no_nf += 1
            continue
        rows.append({"run_id": r.run_id, "start_time": r.start_time,
                     "method": cfg.get("method", "?"), "sampling_factor":
                     cfg.get("sampling_factor", ""), "n_f": int(float(cfg["n_f"])),
                     "seed": cfg.get("seed", ""),
                     "extra": tuple(sorted((k, v) for k, v in cfg.items() if k not in NAMED)),
                     **{c: getattr(r, c) for c in cols}})
    if no_nf:
        notes.append(f"{no_nf} finished run(s) without an n_f param, not shown.")
    runs = pd.DataFrame(rows)
    runs, dropped = _drop_duplicates(runs)
    if dropped:
        shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        notes.append(f"{len(dropped)} duplicate run(s) (same config and seed as a later run) "
                     f"ignored, the latest kept: {shown}.")
    runs["row"], runs["params"] = _labels(runs)
    return runs, notes


def _drop_duplicates(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Same configuration and seed twice: keep the run that started last (it is the one the
    study would have produced now); return the ids of the others so a note can name them."""
    key = ["method", "sampling_factor", "extra", "n_f", "seed"]
    ordered = runs.sort_values("start_time", kind="stable")
    dup = ordered.duplicated(subset=key, keep="last")
    return ordered[~dup].reset_index(drop=True), list(ordered.loc[dup, "run_id"])


def _labels(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Row labels and the keys that distinguish them: 'plain', 'oversample x30',
    'vae x30 [latent_dim=64]'. The keys in brackets are those that differ between the
    configurations of the same method, so a reader sees why two rows are apart and nothing
    is averaged across them."""
    shown_of: dict[tuple, list[str]] = {}
    for method, group in runs.groupby("method", sort=False):
        configs = sorted({(sf, extra) for sf, extra in
                          zip(group["sampling_factor"], group["extra"])})
        dicts = [dict(extra) for _, extra in configs]
        keys = sorted({k for d in dicts for k in d})
        differing = [k for k in keys if len({d.get(k) for d in dicts}) > 1]
        shown = {c: [f"{k}={dict(c[1])[k]}" for k in differing if k in dict(c[1])]
                 for c in configs}
        if len({(sf, tuple(v)) for (sf, _), v in shown.items()}) < len(configs):
            # an absent key told two configurations apart: show absences too
            shown = {c: [f"{k}={dict(c[1]).get(k, 'unset')}" for k in differing]
                     for c in configs}
        for (sf, extra), v in shown.items():
            shown_of[(method, sf, extra)] = v
    labels, params = [], []
    for m, sf, e in zip(runs["method"], runs["sampling_factor"], runs["extra"]):
        v = shown_of[(m, sf, e)]
        labels.append((f"{m} x{sf}" if sf else m) + (f" [{', '.join(v)}]" if v else ""))
        params.append("; ".join(v))
    return labels, params


def _row_order(runs: pd.DataFrame) -> list[str]:
    keys = runs.drop_duplicates("row")
    order = sorted(zip(keys["method"], keys["sampling_factor"], keys["extra"], keys["row"]),
                   key=lambda t: (_method_key(t[0]), _num_key(t[1]) if t[1] else (-1, 0.0, ""),
                                  [(k, _num_key(v)) for k, v in t[2]], t[3]))
    return [t[3] for t in order]


def grid_table(study: Study, metric_set: str = "test", with_paper: bool = False,
               compare: str | None = None) -> Table:
    """Table 2's layout: rows = method (+ sampling factor, + differing keys), columns = n_f
    with acc_h and acc, cells = mean ± std over seeds in percent."""
    runs, notes = finished_runs(study, metric_set)
    records = []
    for (row, n_f), group in runs.groupby(["row", "n_f"], sort=False):
        first = group.iloc[0]
        for m in METRICS:
            values = group[f"{metric_set}_{m}"] * 100.0
            records.append({
                "section": "table", "row": row, "method": first["method"],
                "sampling_factor": first["sampling_factor"],
                "params": first["params"],
                "n_f": int(n_f), "metric": m, **summarize(values.to_numpy()),
                "seeds": ";".join(map(str, group["seed"])),
                "run_ids": ";".join(group["run_id"])})
    cells = pd.DataFrame(records)
    table = Table(study=study, metric_set=metric_set, cells=cells, rows=_row_order(runs),
                  n_fs=sorted(runs["n_f"].unique().tolist()), notes=notes)
    table.notes.insert(0, "Cells: mean ± std over seeds (sample std, ddof=1), n = seeds; "
                          "one configuration per row (keys in "
                          "[brackets] differ between rows of a method); 95% Student-t "
                          "intervals and run ids in --format csv.")
    if with_paper:
        _add_paper(table)
    if compare:
        table.comparisons, table.summaries = compare_runs(runs, compare, metric_set)
    return table


# -- the paper's numbers -----------------------------------------------------------------


def load_paper() -> pd.DataFrame:
    """Park (2021) Table 2 as shipped in results/data/paper_table2.csv (percent)."""
    text = resources.files("results").joinpath("data/paper_table2.csv").read_text("utf-8")
    paper = pd.read_csv(StringIO(text), comment="#", dtype={"sampling_factor": str})
    paper["sampling_factor"] = paper["sampling_factor"].fillna("").astype(str)
    return paper


def _add_paper(table: Table) -> None:
    """Adds `paper` and `diff` (ours - paper, points) to the cells the paper also reports."""
    if table.metric_set != "test":
        raise ResultsError("--with-paper compares with the paper's test accuracies; use "
                           "--metric-set test")
    paper = load_paper().melt(id_vars=["method", "sampling_factor", "n_f"],
                              value_vars=list(METRICS), var_name="metric", value_name="paper")
    cells = table.cells.merge(paper, on=["method", "sampling_factor", "n_f", "metric"],
                              how="left")
    cells["diff"] = cells["mean"] - cells["paper"]
    table.cells, table.with_paper = cells, True
    ours = set(zip(cells["method"], cells["sampling_factor"]))
    missing = [f"{m} x{sf}" if sf else m for m, sf in
               load_paper()[["method", "sampling_factor"]].drop_duplicates().itertuples(
                   index=False) if (m, sf) not in ours]
    table.notes.append(f"paper: {PAPER_SOURCE}, test set, percent; diff = ours - paper "
                       f"(points)." + (f" Paper rows with no runs here: {', '.join(missing)}."
                                       if missing else ""))


# -- paired comparisons ------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One side of --compare: a method, optionally pinned to one sampling factor."""

    method: str
    sampling_factor: str | None = None

    def __str__(self) -> str:
        return self.method + (f"@{self.sampling_factor}" if self.sampling_factor else "")


_COMPARE = re.compile(r"^\s*([A-Za-z_]\w*)(?:@(\d+))?\s*:\s*([A-Za-z_]\w*)(?:@(\d+))?\s*$")


def parse_compare(text: str) -> tuple[Side, Side]:
    """'vae:crt' or 'vae@50:oversample@50' -> the two sides.

    Pairing rules (compare_runs): runs pair when n_f and seed agree, and the sampling factor
    too when both methods use one and neither side pins it; a pinned factor on one side
    pins the other side to the same factor (if it uses one); pinning both (vae@50:crt@30)
    compares exactly those. A method without a sampling factor (plain) is compared with
    each factor of the other side.
    """
    m = _COMPARE.match(text or "")
    if not m:
        raise ResultsError(f"--compare {text!r}: expected {COMPARE_FORM}")
    a, b = Side(m.group(1), m.group(2)), Side(m.group(3), m.group(4))
    if a == b:
        raise ResultsError(f"--compare {text!r} compares {a} with itself; expected "
                           f"{COMPARE_FORM}")
    return a, b


def _side_runs(runs: pd.DataFrame, side: Side, text: str) -> pd.DataFrame:
    """The runs of one side; ResultsError naming what exists when there are none."""
    mine = runs[runs["method"] == side.method]
    if mine.empty:
        have = sorted(set(runs["method"]), key=_method_key)
        raise ResultsError(f"--compare {text}: no finished runs of method {side.method!r}; "
                           f"methods with finished runs: {', '.join(have)}")
    if side.sampling_factor is not None:
        pinned = mine[mine["sampling_factor"] == side.sampling_factor]
        if pinned.empty:
            have = sorted({sf for sf in mine["sampling_factor"] if sf}, key=_num_key)
            raise ResultsError(f"--compare {text}: no finished runs of {side}; "
                               f"{side.method} has sampling factors: "
                               f"{', '.join(have) if have else 'none (it does not use one)'}")
        mine = pinned
    return mine


def compare_runs(runs: pd.DataFrame, text: str, metric_set: str
                 ) -> tuple[pd.DataFrame, list[str]]:
    """Per-seed paired differences A - B (points) for every n_f both sides have, with the
    mean, sample std, n and 95% t interval; plus one plain-language line per n_f."""
    a, b = parse_compare(text)
    ra, rb = _side_runs(runs, a, text), _side_runs(runs, b, text)
    a_uses, b_uses = bool((ra["sampling_factor"] != "").any()), \
        bool((rb["sampling_factor"] != "").any())
    if a_uses and b_uses:
        pin = a.sampling_factor or b.sampling_factor
        if pin and not (a.sampling_factor and b.sampling_factor):
            ra, rb = (_side_runs(runs, Side(a.method, pin), text),
                      _side_runs(runs, Side(b.method, pin), text))
    pairs = []  # (row a, row b)
    for la, ga in ra.groupby("row", sort=False):
        for lb, gb in rb.groupby("row", sort=False):
            sfa, sfb = ga["sampling_factor"].iloc[0], gb["sampling_factor"].iloc[0]
            if a_uses and b_uses and not (a.sampling_factor and b.sampling_factor) \
                    and sfa != sfb:
                continue
            pairs.append((la, lb, ga, gb))
    if not pairs:
        fa = sorted(set(ra["sampling_factor"]), key=_num_key)
        fb = sorted(set(rb["sampling_factor"]), key=_num_key)
        raise ResultsError(f"--compare {text}: {a.method} and {b.method} share no sampling "
                           f"factor ({a.method}: {', '.join(fa)}; {b.method}: "
                           f"{', '.join(fb)}); pin both, e.g. {a.method}@{fa[0]}:"
                           f"{b.method}@{fb[0]}")
    order = {r: i for i, r in enumerate(_row_order(runs))}
    pairs.sort(key=lambda p: (order[p[0]], order[p[1]]))
    records, lines = [], []
    common_nf = False
    for la, lb, ga, gb in pairs:
        label = f"{la} minus {lb}"
        for n_f in sorted(set(ga["n_f"]) & set(gb["n_f"])):
            common_nf = True
            merged = ga[ga["n_f"] == n_f].merge(gb[gb["n_f"] == n_f], on="seed",
                                                suffixes=("_a", "_b"))
            merged = merged.sort_values("seed", key=lambda s: s.map(_num_key))
            per_metric = {}
            for m in METRICS:
                diffs = (merged[f"{metric_set}_{m}_a"] - merged[f"{metric_set}_{m}_b"]) * 100.0
                per_metric[m] = summarize(diffs.to_numpy())
                records.append({
                    "section": "comparison", "row": label, "a": la, "b": lb, "n_f": int(n_f),
                    "metric": m, **per_metric[m],
                    "seeds": ";".join(map(str, merged["seed"])),
                    "run_ids": ";".join(f"{x}:{y}" for x, y in
                                        zip(merged["run_id_a"], merged["run_id_b"]))})
            lines.append(_summary_line(label, int(n_f), per_metric, list(merged["seed"])))
    if not common_nf:
        raise ResultsError(f"--compare {text}: no n_f value has runs of both sides "
                           f"({a}: {', '.join(map(str, sorted(set(ra['n_f']))))}; {b}: "
                           f"{', '.join(map(str, sorted(set(rb['n_f']))))})")
    return pd.DataFrame(records), lines


def _summary_line(label: str, n_f: int, per_metric: dict[str, dict], seeds: list) -> str:
    """'vae x50 minus crt x50 at n_f=10: +4.10 acc_h points, 95% CI [1.20, 7.00]; ...'"""
    n = len(seeds)
    head = f"{label} at n_f={n_f}: "
    if n == 0:
        return head + "no seed was run by both, nothing to pair."
    parts = []
    for m, s in per_metric.items():
        part = f"{s['mean']:+.2f} {m} points"
        if n >= 2:
            part += f", 95% CI [{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]"
        parts.append(part)
    tail = f"{n} seeds" if n >= 2 else \
        "1 paired seed, so the confidence interval is undefined (needs at least 2)"
    return head + "; ".join(parts) + f"; {tail}."


# -- optuna studies: best trial per stratum ----------------------------------------------


def _stratum_key(stratum: str) -> list:
    return [(k, _num_key(v)) for k, _, v in (p.partition("=") for p in stratum.split(",") if p)]


def optuna_table(study: Study, metric_set: str = "test", with_paper: bool = False) -> Table:
    """One row per stratum: the trial best by the validation objective (the test set never
    chooses), its metrics, the searched keys' values and how many trials the stratum ran."""
    trials = study.trials
    objective, mode = study.objective, study.mode
    cols = [f"{metric_set}_{m}" for m in METRICS]
    fin = trials[trials["status"] == "FINISHED"]
    if fin.empty:
        raise no_finished(study)
    records = []
    for stratum in sorted(set(trials["stratum"]), key=_stratum_key):
        group = trials[trials["stratum"] == stratum].sort_values("start_time", kind="stable")
        counts = group["status"].value_counts()
        ok = group[(group["status"] == "FINISHED")]
        ok = ok[ok[[c for c in [objective, *cols]]].notna().all(axis=1)] \
            if all(c in ok for c in [objective, *cols]) else ok.iloc[0:0]
        base = {"section": "optuna", "stratum": stratum or "(all)",
                "n_trials": len(group), "n_finished": int(counts.get("FINISHED", 0)),
                "n_failed": int(counts.get("FAILED", 0)),
                "n_killed": int(counts.get("KILLED", 0)),
                "objective": f"{objective} ({mode})"}
        if ok.empty:
            records += [{**base, "metric": m} for m in METRICS]
            continue
        scores = ok[objective]
        best = ok.loc[scores.idxmax() if mode == "max" else scores.idxmin()]
        cfg = {k: v for k, v in best["config"].items() if k not in BOOKKEEPING}
        searched = study.searched if study.searched is not None else _varying(ok)
        shown = "; ".join(f"{k}={_short(cfg[k])}" for k in searched if k in cfg)
        for m in METRICS:
            records.append({
                **base, "row": stratum or "(all)", "method": cfg.get("method", ""),
                "sampling_factor": cfg.get("sampling_factor", ""),
                "n_f": int(float(cfg["n_f"])) if "n_f" in cfg else None,
                "objective_value": float(best[objective]), "params": shown, "metric": m,
                "value": float(best[f"{metric_set}_{m}"]) * 100.0,
                "run_ids": best["run_id"], "run_name": best["run_name"]})
    cells = pd.DataFrame(records)
    table = Table(study=study, metric_set=metric_set, cells=cells,
                  rows=list(dict.fromkeys(cells["stratum"])), n_fs=[],
                  notes=status_notes(trials))
    how = "the searched keys of the space" if study.searched is not None else \
        "keys that vary between the stratum's trials (no space.json recorded)"
    table.notes.insert(0, f"Optuna study: per stratum, the finished trial best by the "
                          f"validation objective {objective} ({mode}; ties: the earlier "
                          f"trial), shown with its {metric_set} metrics in percent; params: "
                          f"{how}; trials: finished/failed/stopped of all in the stratum.")
    if with_paper:
        if metric_set != "test":
            raise ResultsError("--with-paper compares with the paper's test accuracies; use "
                               "--metric-set test")
        paper = load_paper().melt(id_vars=["method", "sampling_factor", "n_f"],
                                  value_vars=list(METRICS), var_name="metric",
                                  value_name="paper")
        cells = cells.merge(paper, on=["method", "sampling_factor", "n_f", "metric"],
                            how="left")
        cells["diff"] = cells["value"] - cells["paper"]
        table.cells, table.with_paper = cells, True
        table.notes.append(f"paper: {PAPER_SOURCE}, the row of the best trial's method, "
                           f"sampling factor and n_f; diff = ours - paper (points).")
    return table


def _varying(runs: pd.DataFrame) -> list[str]:
    """Keys whose value differs between runs: what a search without space.json varied."""
    dicts = [{k: v for k, v in c.items() if k not in BOOKKEEPING} for c in runs["config"]]
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({d.get(k) for d in dicts}) > 1]


# -- rendering ---------------------------------------------------------------------------


def _short(value: str) -> str:
    """A param as MLflow stored it, floats to 4 significant digits (run ids give the exact
    values)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() or "." not in value else f"{number:.4g}"


def _fmt_cell(s: pd.Series | None, pm: str) -> str:
    """'66.01 ± 1.20 (n=3)'; one seed: '66.01 (n=1)'."""
    if s is None or not s["n"]:
        return ""
    if s["n"] < 2:
        return f"{s['mean']:.2f} (n=1)"
    return f"{s['mean']:.2f} {pm} {s['std']:.2f} (n={int(s['n'])})"


def _num(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _grid_columns(table: Table) -> list[tuple[int, str, str]]:
    """(n_f, metric, what) for each value column: what = ours | paper | diff."""
    whats = ("ours", "paper", "diff") if table.with_paper else ("ours",)
    return [(n_f, m, w) for n_f in table.n_fs for m in METRICS for w in whats]


def _grid_matrix(table: Table, pm: str, bold: Callable[[str], str]) -> list[list[str]]:
    """Cell texts, one list per row, with the column best (max mean) passed through `bold`."""
    cells = table.cells.set_index(["row", "n_f", "metric"])
    best = table.cells.groupby(["n_f", "metric"])["mean"].max()
    out = []
    for row in table.rows:
        texts = []
        for n_f, m, what in _grid_columns(table):
            s = cells.loc[(row, n_f, m)] if (row, n_f, m) in cells.index else None
            if what == "ours":
                text = _fmt_cell(s, pm)
                if s is not None and round(s["mean"], 2) == round(best[(n_f, m)], 2):
                    text = bold(text)
            elif s is None:
                text = ""
            else:
                text = _num(s[what], signed=(what == "diff"))
            texts.append(text)
        out.append([row, *texts])
    return out


def _title(table: Table) -> str:
    kind = "Optuna search" if table.study.kind == "optuna" else "grid study"
    return f"{table.study.name} ({kind}): {table.metric_set} metrics, percent"


def to_markdown(table: Table) -> str:
    """A pipe table that renders in a README, notes as a list, comparisons as a second table
    followed by the plain-language lines."""
    if table.study.kind == "optuna":
        header, rows = _optuna_matrix(table)
    else:
        header = ["method"] + [f"n_f={n} {m}" + ("" if w == "ours" else f" {w}")
                               for n, m, w in _grid_columns(table)]
        rows = _grid_matrix(table, "±", lambda t: f"**{t}**" if t else t)
    lines = [f"**{_md(_title(table))}**", "", _md_row(header),
             _md_row(["---"] + ["---:"] * (len(header) - 1))]
    lines += [_md_row([c if c else "–" for c in r]) for r in rows]
    lines += [""] + [f"- {_md(n)}" for n in table.notes]
    if table.comparisons is not None:
        header, rows = _compare_matrix(table)
        lines += ["", f"**Paired differences, A minus B ({table.metric_set}, points; "
                      f"95% Student-t CI over seeds)**", "", _md_row(header),
                  _md_row(["---", "---:"] + ["---:"] * (len(header) - 2))]
        lines += [_md_row([c if c else "–" for c in r]) for r in rows]
        lines += [""] + table.summaries
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_md(str(c)) for c in cells) + " |"


def _optuna_matrix(table: Table) -> tuple[list[str], list[list[str]]]:
    ms = table.metric_set
    header = ["stratum", "trials (finished/failed/stopped of all)", "best trial",
              table.study.objective]
    for m in METRICS:
        header += [f"{ms} {m}"] + ([f"{m} paper", f"{m} diff"] if table.with_paper else [])
    header += ["searched params"]
    rows = []
    for stratum, g in table.cells.groupby("stratum", sort=False):
        g = g.set_index("metric")
        first = g.iloc[0]
        found = isinstance(first.get("run_ids"), str)
        objective = first.get("objective_value") if found else None
        row = [stratum, f"{first['n_finished']}/{first['n_failed']}/{first['n_killed']} of "
                        f"{first['n_trials']}",
               f"{first['run_name']} ({first['run_ids'][:8]})" if found else "",
               _objective_text(table.study.objective, objective)]
        for m in METRICS:
            row.append(_num(g.loc[m].get("value")) if found else "")
            if table.with_paper:
                row += [_num(g.loc[m].get("paper")), _num(g.loc[m].get("diff"), signed=True)]
        row.append(first.get("params") if found else "")
        rows.append(row)
    return header, rows


def _objective_text(objective: str, value: float | None) -> str:
    """Accuracy-like objectives in percent like the rest of the table, others as logged."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value * 100:.2f}" if re.search(r"acc", objective) else f"{value:.4g}"


def _compare_matrix(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["comparison", "n_f"]
    for m in METRICS:
        header += [f"{m} diff", f"{m} 95% CI"]
    header += ["n", "seeds"]
    rows = []
    for (label, n_f), g in table.comparisons.groupby(["row", "n_f"], sort=False):
        g = g.set_index("metric")
        row = [label, str(n_f)]
        for m in METRICS:
            s = g.loc[m]
            row += [_num(s["mean"], signed=True),
                    f"[{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]" if s["n"] >= 2 else
                    "undefined (n<2)"]
        row += [str(int(g.iloc[0]["n"])), g.iloc[0]["seeds"].replace(";", ", ")]
        rows.append(row)
    return header, rows


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX text ('latent_dim' -> 'latent\\_dim'; ± becomes $\\pm$)."""
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace("±", r"$\pm$").replace("–", "--").replace("−", "-")


def to_latex(table: Table) -> str:
    """A booktabs table float: caption = title + notes, column best in bold; comparisons
    as a second tabular; the plain-language lines as comments after it."""
    if table.study.kind == "optuna":
        header, rows = _optuna_matrix(table)
        body = _latex_tabular([[latex_escape(h) for h in header]],
                              [[latex_escape(c) for c in r] for r in rows], len(header))
    else:
        cols = _grid_columns(table)
        per = len(cols) // max(len(table.n_fs), 1)
        top = ["Method"] + [rf"\multicolumn{{{per}}}{{c}}{{$n_f = {n}$}}" for n in table.n_fs]
        rules = " ".join(rf"\cmidrule(lr){{{2 + i * per}-{1 + (i + 1) * per}}}"
                         for i in range(len(table.n_fs)))
        names = {"ours": None, "paper": "paper", "diff": r"$\Delta$"}
        sub = [""] + [latex_escape(m) if names[w] is None else f"{latex_escape(m)} {names[w]}"
                      for _, m, w in cols]
        matrix = _grid_matrix(table, "±", lambda t: f"\x00{t}\x01" if t else t)
        rows = [[latex_escape(c).replace("\x00", r"\textbf{").replace("\x01", "}")
                 for c in r] for r in matrix]
        body = _latex_tabular([top, sub], rows, 1 + len(cols), rules=rules)
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.study.name}-{table.metric_set}")
    caption = latex_escape(_title(table) + ". " + " ".join(table.notes))
    lines = [r"% fsvae-study table: generated from MLflow; run ids in --format csv",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}",
             rf"\label{{tab:{label}}}", body]
    if table.comparisons is not None:
        header, rows = _compare_matrix(table)
        lines += [r"\par\medskip",
                  _latex_tabular([[latex_escape(h) for h in header]],
                                 [[latex_escape(c) for c in r] for r in rows], len(header))]
    lines.append(r"\end{table}")
    lines += [f"% {s}" for s in table.summaries]
    return "\n".join(lines) + "\n"


def _latex_tabular(head: list[list[str]], rows: list[list[str]], ncols: int,
                   rules: str = "") -> str:
    lines = [rf"\begin{{tabular}}{{l{'r' * (ncols - 1)}}}", r"\toprule"]
    for i, h in enumerate(head):
        lines.append(" & ".join(h) + r" \\")
        if i == 0 and rules:
            lines.append(rules)
    lines.append(r"\midrule")
    lines += [" & ".join(c if c else "--" for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    """Tidy: one line per (row, n_f, metric) cell, then the comparison lines, with the run
    ids behind each number; NaN (no spread with one seed) as an empty field."""
    frames = [table.cells]
    if table.comparisons is not None:
        frames.append(table.comparisons)
    out = pd.concat(frames, ignore_index=True)
    if table.study.kind == "optuna":
        first = ["section", "stratum", "row", "method", "sampling_factor", "params", "n_f",
                 "metric", "value", "objective", "objective_value", "n_trials", "n_finished",
                 "n_failed", "n_killed", "run_name", "run_ids"]
    else:
        first = ["section", "row", "method", "sampling_factor", "params", "n_f", "metric",
                 "mean", "std", "n", "ci95_low", "ci95_high", "seeds", "run_ids"]
    if table.with_paper:
        first += ["paper", "diff"]
    if table.comparisons is not None:
        first += ["a", "b"]
    out = out.reindex(columns=first + [c for c in out.columns if c not in first])
    return out.to_csv(index=False)


RENDERERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def build_table(study: Study, metric_set: str = "test", with_paper: bool = False,
                compare: str | None = None) -> Table:
    """The table for the study's kind (grid: Table 2 layout; optuna: best per stratum)."""
    if study.kind == "optuna":
        if compare:
            raise ResultsError("--compare pairs seeds of grid studies; this experiment is an "
                               "Optuna search (one best trial per stratum)")
        return optuna_table(study, metric_set, with_paper)
    return grid_table(study, metric_set, with_paper, compare)


def table_from_args(args: argparse.Namespace) -> int:
    """`fsvae-study table`: prints (or writes to --out) the table, then the comparison lines.
    CSV keeps stdout machine-readable: its notes and summary lines go to stderr."""
    if args.compare:
        parse_compare(args.compare)  # bad syntax fails before MLflow is read
    study = load_study(args.experiment, tracking_uri_from(args))
    table = build_table(study, args.metric_set, args.with_paper, args.compare)
    text = RENDERERS[args.format](table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
        if args.format == "csv":
            print("\n".join(table.notes))
        if table.summaries:
            print("\n".join(table.summaries))
    else:
        sys.stdout.write(text)
        if args.format == "csv":
            print("\n".join(table.notes + table.summaries), file=sys.stderr)
    return 0
