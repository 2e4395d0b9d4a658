"""A study's MLflow record in a test: runs read back as a user reads them, and the one writer
of hand-made records, which writes a study the way study/record/write.py does.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, ViewType
from mlflow.tracking import MlflowClient

T0 = 1_700_000_000_000  # ms; a hand-made study's trial i starts i seconds after it


def tracking_uri(storage: Path) -> str:
    return f"sqlite:///{(storage / 'mlflow.db').resolve()}"


def runs(uri: str, experiment: str, deleted_too: bool = False):
    """All runs of an experiment as a DataFrame (params, metrics, tags columns)."""
    mlflow.set_tracking_uri(uri)
    view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
    return mlflow.search_runs(experiment_names=[experiment], run_view_type=view)


def trial_runs(uri: str, experiment: str):
    df = runs(uri, experiment)
    if df.empty:
        return df
    return df[df["tags.fsvae.role"] == "trial"].reset_index(drop=True)


def client(uri: str) -> MlflowClient:
    return MlflowClient(uri)


# -- hand-made records ------------------------------------------------------------------------


class StudyWriter:
    """One hand-made study: an experiment and its parent run, tagged as study/driver/run.py tags
    them (`tags` adds to or replaces those), then `trial` writes one child run at a time."""

    def __init__(
        self,
        client: MlflowClient,
        root: Path,
        name: str,
        kind: str,
        strata: str = "",
        tags: dict | None = None,
    ):
        self.client = client
        self.exp = client.create_experiment(name, artifact_location=(root / "art" / name).as_uri())
        self.parent = client.create_run(
            self.exp,
            start_time=T0 - 10_000,
            run_name=f"study:{name}",
            tags={
                "fsvae.role": "study",
                "fsvae.space_kind": kind,
                "fsvae.objective": "val_acc_h",
                "fsvae.mode": "max",
                "fsvae.strata": strata,
                **(tags or {}),
            },
        ).info.run_id

    def trial(
        self,
        i: int,
        params: dict,
        metrics: dict,
        status: str,
        stratum: str = "",
        tags: dict | None = None,
    ) -> str:
        """Child run i, started at T0 + i s: params as strings, metrics as fractions (None:
        not logged), status as the recorder ends it. `tags` adds to (or replaces) the
        recorder's tags, e.g. fsvae.trial_key."""
        run = self.client.create_run(
            self.exp,
            start_time=T0 + 1000 * i,
            run_name=f"trial-{i}",
            tags={
                "mlflow.parentRunId": self.parent,
                "fsvae.role": "trial",
                "fsvae.trial_id": f"t{i:03d}",
                "fsvae.stratum": stratum,
                **(tags or {}),
            },
        )
        rid = run.info.run_id
        self.client.log_batch(
            rid,
            params=[Param(k, str(v)) for k, v in sorted(params.items())],
            metrics=[Metric(k, float(v), T0, 0) for k, v in metrics.items() if v is not None],
        )
        self.client.set_terminated(rid, status)
        return rid


def grid_params(method: str, sf: int | None, latent: int | None, n_f: int, seed: int) -> dict:
    """The active config keys a hand-made trial logs (sampling_factor only where it is
    used)."""
    p = {
        "method": method,
        "n_f": n_f,
        "seed": seed,
        "backbone": "resnet18",
        "image_size": 32,
        "num_minority": 5,
        "data": "/data/fs14",
        "device": "cpu",
        "data_workers": 0,
    }
    if sf is not None:
        p["sampling_factor"] = sf
    if method != "plain" and method != "oversample":
        p["classifier_lr"] = 0.05
    if latent is not None:
        p["latent_dim"] = latent
    return p


class SyntheticStudy:
    """A study's experiment and parent run on a real SQLite store in `folder`, whose trials
    are the benchmark's synthetic results (study/hooks/bench_trial.py) recorded by the trial's
    real TrialRecorder, FINISHED with their figures still to come, as a trial leaves them."""

    def __init__(self, folder: Path, name: str, **overrides):
        from fsvae import config as config_mod
        from fsvae.trial import resolve
        from study.identity.parent import ensure_experiment
        from study.record.schema import ROLE

        self.folder, self.uri = folder, f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.exp = ensure_experiment(self.client, name, folder)
        self.parent = self.client.create_run(self.exp, tags={ROLE: "study"}).info.run_id
        self.cfg = resolve(
            config_mod.resolve({"method": "vae", "data": str(folder), **overrides}, preset="tiny")
        )

    def trial(self, key: str) -> tuple:
        """(its TrialRecorder, its result)."""
        from fsvae import config as config_mod
        from study.hooks import bench_trial
        from study.record import write as records

        rec = records.TrialRecorder(self.uri, self.exp, self.parent, key, key, known=[])
        rec.start(config_mod.active_config(self.cfg))
        out = self.folder / f"out-{key}"
        result = bench_trial.synthetic_trial("instant")(
            self.cfg, progress=rec.progress, out_dir=out
        )
        rec.finish(result, out, figures_later=True)  # as a trial does: PNGs after FINISHED
        return rec, result
