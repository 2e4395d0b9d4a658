"""Reads one study back from its MLflow record: its parent run's settings and its trial runs.

What a study writes (docs/mlflow.md): a parent run tagged fsvae.role=study with the
study's kind, objective and strata, and one child run per trial tagged fsvae.role=trial
whose params are exactly the trial's active config keys. An experiment (a study's name)
can hold several parent runs; one is read at a time (`load_study`).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from results.errors import ResultsError
from study.plan.plan import DEFAULT_STORAGE
from study.plan.storage import default_tracking_uri, is_uri
from study.record.read import (
    DEFAULT_MODE,
    DEFAULT_OBJECTIVE,
    Goal,
    choose_parent,
    goals,
    runs_frame,
    search,
)
from study.record.schema import (
    CONFIRMS,
    MODE,
    OBJECTIVE,
    PARENT,
    ROLE,
    SPACE_KIND,
    STRATA,
    STRATUM,
    TRIAL_ID,
    TRIAL_KEY,
)
from study.secrets import redact

SPLITS = ("train", "val", "test")
# A trial's split sizes (usable images of each shipped list, before the GFSL subsampling):
# these metrics where it logs them, else its data_report.json artifact (fsvae.data's report).
SPLIT_METRICS = tuple(f"data_usable_{s}" for s in SPLITS)


@dataclass
class Study:
    """One study's trial runs and its settings, as the tables, figures and analyses use them.

    `trials` has one row per trial run of the parent run read: run_id, run_name, status,
    start_time, stratum, trial_key (which trial of the study the run is), artifact_uri,
    data_key (the tag cache.data.key: runs with one key read the same data), config (dict
    of its MLflow params, strings) and one column per metric (no prefix).
    """

    name: str
    tracking_uri: str
    kind: str  # grid | optuna
    objective: str  # several (a multi-objective search): joined by commas
    mode: str  # max | min, likewise
    strata: list[str]
    trials: pd.DataFrame
    searched: list[str] | None = None  # optuna: the space's searched keys, if space.json exists
    space_params: dict[str, dict] | None = None  # optuna: space.json's params (type, when...)
    n_other: int = 0  # runs that are neither study nor trial (not written by fsvae-study run)
    confirms: str | None = None  # a confirmation: the search whose winners it reran
    parent_run_id: str | None = None  # the parent run read (fsvae.role=study), if any
    notes: list[str] = field(default_factory=list)  # what was read: other parent runs

    @property
    def goals(self) -> list[Goal]:
        """[(objective, mode), ...], the primary first (study.record.read)."""
        return goals(self.objective, self.mode)

    @property
    def objectives(self) -> list[str]:
        return [o for o, _ in self.goals]

    @property
    def modes(self) -> list[str]:
        return [m for _, m in self.goals]

    @property
    def table_kind(self) -> str:
        """grid, optuna, or confirm: a grid study that reran a search's best configurations
        with new seeds (its parent run names the search, tag fsvae.confirms)."""
        return "confirm" if self.confirms else self.kind


def store_uri(tracking_uri: str | None = None, storage: str | Path | None = None) -> str:
    """tracking_uri if given, else the sqlite store under `storage` (default ./fsvae-studies),
    where `fsvae-study run` writes by default."""
    if tracking_uri:
        return tracking_uri
    return default_tracking_uri(Path(storage or DEFAULT_STORAGE))


def study_folder(experiment: str, storage: str | Path | None = None) -> Path:
    """The study's own folder, <storage>/<experiment> (storage default ./fsvae-studies),
    where `fsvae-study run` keeps its study.json: its figures/ and analysis/ go there.
    ResultsError for an object-store storage, which this machine cannot write PNGs into."""
    if is_uri(str(storage or "")):
        raise ResultsError(
            f"--storage {redact(str(storage))} is not a folder on this machine: "
            f"pass --out for the files"
        )
    return Path(storage or DEFAULT_STORAGE) / experiment


def _check_store(uri: str) -> None:
    """Reading must not create an empty sqlite store where the user mistyped a path."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_file():
            raise ResultsError(
                f"no MLflow store at {path} (pass --tracking-uri, or --storage where the study ran)"
            )


def load_study(experiment: str, tracking_uri: str, parent_run: str | None = None) -> Study:
    """One study of an experiment: the trial runs of one parent run (fsvae.role=study), the
    latest by default, or `parent_run` (its run id). An experiment holds several parent runs
    when a name was run again (or an older store kept them); a trial key is unique only
    within one parent, so one is read at a time and `notes` names the others. Without any
    parent run, every trial run is read. ResultsError names the experiments there if
    `experiment` is unknown, and the parent runs there if `parent_run` is not one."""
    _check_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage != "active":
        names = sorted(e.name for e in client.search_experiments())
        raise ResultsError(
            f"no experiment named {experiment!r} in {redact(tracking_uri)}; "
            f"experiments there: {', '.join(names) if names else 'none'}"
        )
    runs = runs_frame(search(client, exp.experiment_id))
    role = _col(runs, f"tags.{ROLE}")
    trials = runs[role == "trial"]
    parents = _parents(runs[role == "study"], trials)
    last, notes = _choose(experiment, parents, parent_run)
    if last is not None:
        trials = trials[_col(trials, f"tags.{PARENT}") == last["run_id"]]
    study = Study(
        name=experiment,
        tracking_uri=tracking_uri,
        kind=_tag(last, SPACE_KIND) or "grid",
        objective=_tag(last, OBJECTIVE) or DEFAULT_OBJECTIVE,
        mode=_tag(last, MODE) or DEFAULT_MODE,
        strata=[s for s in (_tag(last, STRATA) or "").split(",") if s],
        trials=_trial_frame(trials),
        n_other=int((~role.isin(["study", "trial"])).sum()),
        confirms=_tag(last, CONFIRMS),
        parent_run_id=None if last is None else str(last["run_id"]),
        notes=notes,
    )
    if study.kind == "optuna" and last is not None:
        space = read_json_artifact(tracking_uri, last["artifact_uri"], "space.json")
        if space and isinstance(space.get("params"), dict):
            study.searched = sorted(space["params"])
            study.space_params = space["params"]
    return study


def _parents(parents: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The parent runs in start order, each with `n_trials`, its number of trial runs."""
    if parents.empty:
        return parents
    counts = _col(trials, f"tags.{PARENT}").value_counts()
    out = parents.sort_values("start_time", kind="stable")
    return out.assign(n_trials=[int(counts.get(r, 0)) for r in out["run_id"]])


def _choose(
    experiment: str, parents: pd.DataFrame, asked: str | None
) -> tuple[pd.Series | None, list[str]]:
    """The parent run to read, and the note naming the others. By default the latest that
    has trial runs (a driver stopped before any trial leaves a parent with none), else the
    latest."""
    if parents.empty:
        if asked:
            raise ResultsError(
                f"--parent-run {asked}: experiment {experiment!r} has no parent "
                f"run (tag {ROLE}=study); all its trial runs are read together"
            )
        return None, []
    try:
        chosen = parents.iloc[
            choose_parent(
                list(zip(parents["run_id"], parents["start_time"], parents["n_trials"])), asked
            )
        ]
    except ValueError:
        raise ResultsError(
            f"--parent-run {asked}: no parent run of experiment "
            f"{experiment!r} has that id; its parent runs: "
            f"{'; '.join(_describe(p) for _, p in parents.iterrows())}"
        ) from None
    why = "as --parent-run asked" if asked else "the latest"
    others = parents[parents["run_id"] != chosen["run_id"]]
    if others.empty:
        return chosen, []
    return chosen, [
        f"Experiment {experiment!r} holds {len(parents)} studies (parent runs, "
        f"e.g. a name run again); trial keys are unique only within one, so one "
        f"is read: {_describe(chosen)}, {why}. Not read: "
        f"{'; '.join(_describe(p) for _, p in others.iterrows())}. Pick one with "
        f"--parent-run RUN_ID."
    ]


def _describe(parent: pd.Series) -> str:
    """'<run id> (started 2026-11-29 10:00 UTC, FINISHED, 6 trial runs)'."""
    start, n = pd.Timestamp(parent["start_time"]), int(parent["n_trials"])
    when = start.strftime("%Y-%m-%d %H:%M:%S UTC") if not pd.isna(start) else "start unknown"
    return f"{parent['run_id']} (started {when}, {parent['status']}, {n} trial run{'s' * (n != 1)})"


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


def read_json_artifact(tracking_uri: str, artifact_uri: str, name: str) -> dict | None:
    """A run's JSON artifact; None where it was not recorded or cannot be read."""
    try:
        if artifact_uri.startswith("file:"):
            path = Path(unquote(urlparse(artifact_uri).path)) / name
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        with tempfile.TemporaryDirectory(prefix="fsvae-artifact-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{artifact_uri}/{name}", dst_path=tmp, tracking_uri=tracking_uri
            )
            return json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception:  # a missing or unreadable artifact only costs what it would have added
        return None


def read_split_sizes(study: Study, run_ids: list[str]) -> dict[str, tuple[int, int, int] | None]:
    """Each run's (train, val, test) split sizes; None where the run recorded none. The
    artifact is read once per data key, not once per run."""
    trials = study.trials.set_index("run_id")
    out: dict[str, tuple[int, int, int] | None] = {}
    by_data: dict[str, tuple[int, int, int] | None] = {}
    for rid in run_ids:
        row = trials.loc[rid]
        logged = [row.get(m) for m in SPLIT_METRICS]
        if all(isinstance(v, float) and not math.isnan(v) for v in logged):
            train, val, test = (int(v) for v in logged)
            out[rid] = (train, val, test)
            continue
        key = row["data_key"] if isinstance(row["data_key"], str) else rid
        if key not in by_data:
            report = read_json_artifact(
                study.tracking_uri, str(row["artifact_uri"]), "data_report.json"
            )
            by_data[key] = _report_sizes(report)
        out[rid] = by_data[key]
    return out


def _report_sizes(report: dict | None) -> tuple[int, int, int] | None:
    """(train, val, test) usable images from a data_report.json; None if it has none."""
    if report is None:
        return None
    try:
        train, val, test = (int(report["splits"][s]["usable"]) for s in SPLITS)
    except (KeyError, TypeError, ValueError):
        return None
    return train, val, test


def _trial_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial run with its params gathered into one dict (absent keys stay absent,
    so inactive keys such as sampling_factor for `plain` are not invented)."""
    params = [c for c in runs.columns if c.startswith("params.")]
    metrics = [c for c in runs.columns if c.startswith("metrics.")]
    out = pd.DataFrame(
        {
            "run_id": _col(runs, "run_id").astype(object),
            "run_name": _col(runs, "tags.mlflow.runName").astype(object),
            "status": _col(runs, "status").astype(object),
            "start_time": _col(runs, "start_time"),
            "stratum": _col(runs, f"tags.{STRATUM}").fillna("").astype(object),
            "parent": _col(runs, f"tags.{PARENT}").astype(object),
            "trial_key": _trial_keys(runs),
            "artifact_uri": _col(runs, "artifact_uri").astype(object),
            "data_key": _col(runs, "tags.cache.data.key").astype(object),
        },
        index=runs.index,
    )
    out["config"] = [
        {c[len("params.") :]: row[c] for c in params if isinstance(row[c], str)}
        for _, row in runs.iterrows()
    ]
    for c in metrics:
        out[c[len("metrics.") :]] = runs[c].astype(float)
    return out.reset_index(drop=True)


def _trial_keys(runs: pd.DataFrame) -> pd.Series:
    """The trial each run is a run of: its fsvae.trial_key tag; runs written before that tag
    existed fall back to fsvae.trial_id (Ray's id of the trial), and a run with neither is
    a trial of its own."""
    key = _col(runs, f"tags.{TRIAL_KEY}").astype(object)
    key = key.where(key.notna() & (key != ""), _col(runs, f"tags.{TRIAL_ID}"))
    key = key.where(key.notna() & (key != ""), _col(runs, "run_id"))
    return key.astype(object)
