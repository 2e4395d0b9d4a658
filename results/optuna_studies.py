"""A search's Optuna studies read back from their RDB storage, one per stratum, with each
trial joined to its MLflow run.

Where they are (README "Studies"): the study's parent run names the storage in its tag
fsvae.optuna_storage (default sqlite:///<storage>/optuna.db); stratum `n_f=5` of study
`search-nf` is the Optuna study `search-nf/n_f=5`, and a search without strata is the
Optuna study `search-nf`. Trial number k of stratum L is the MLflow run tagged
fsvae.trial_key = "L#k" (study/schema.py).
"""
from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
from mlflow.tracking import MlflowClient

from results.errors import ResultsError
from results.labels import stratum_key
from results.runs import one_run_per_trial
from results.store import DEFAULT_STORAGE, Study

STORAGE_TAG = "fsvae.optuna_storage"


def storage_url(study: Study, given: str | None = None,
                storage: str | Path | None = None) -> str:
    """`given` (--optuna-storage); else the URL the study's parent run recorded; else the
    default sqlite file under `storage` (default ./fsvae-studies)."""
    if given:
        return given
    if study.parent_run_id:
        tags = MlflowClient(study.tracking_uri).get_run(study.parent_run_id).data.tags
        if tags.get(STORAGE_TAG):
            return tags[STORAGE_TAG]
    return f"sqlite:///{(Path(storage or DEFAULT_STORAGE) / 'optuna.db').resolve()}"


def open_strata(study: Study, url: str) -> dict[str, optuna.Study]:
    """Stratum label ('' without strata) -> its Optuna study, in stratum order. Opening
    never creates a database or a study; ResultsError names what the storage holds."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise ResultsError(f"no Optuna storage at {url} (the search's studies live there; "
                           f"pass --optuna-storage, or --storage where the study ran)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    names = optuna.get_all_study_names(storage)
    labels = {n: _label(study.name, n) for n in names}
    mine = sorted((n for n, label in labels.items() if label is not None),
                  key=lambda n: stratum_key(labels[n]))
    if not mine:
        raise ResultsError(f"no Optuna study of search {study.name!r} in {url} (expected "
                           f"{study.name!r} or {study.name + '/<stratum>'!r}); studies there: "
                           f"{', '.join(sorted(names)) or 'none'}")
    return {labels[n]: optuna.load_study(study_name=n, storage=storage) for n in mine}


def _label(experiment: str, name: str) -> str | None:
    """The stratum label of Optuna study `name` if it belongs to `experiment`, else None."""
    if name == experiment:
        return ""
    prefix = experiment + "/"
    return name[len(prefix):] if name.startswith(prefix) else None


def trial_frame(study: Study, label: str, optuna_study: optuna.Study) -> pd.DataFrame:
    """One row per Optuna trial of a stratum: number, state, values (a list, or None),
    params (dict) and, where its MLflow run exists (the run the tables count), run_id,
    run_name and that run's metrics (val_*, test_*, ...)."""
    runs, _ = one_run_per_trial(study.trials)
    runs = runs.set_index("trial_key")
    rows = []
    for t in optuna_study.get_trials(deepcopy=False):
        key = f"{label}#{t.number}"
        run = runs.loc[key] if key in runs.index else None
        metrics = {} if run is None else {
            c: run[c] for c in runs.columns
            if c.startswith(("val_", "test_")) and pd.notna(run[c])}
        rows.append({"number": t.number, "state": t.state.name, "values": t.values,
                     "params": dict(t.params), "trial_key": key,
                     "run_id": None if run is None else run["run_id"],
                     "run_name": None if run is None else run["run_name"], **metrics})
    return pd.DataFrame(rows)
