"""A study's best model in MLflow: logged from its best trial, loaded back by run id or URI
(docs/mlflow.md#the-best-model).

The best trial is the FINISHED trial run best by the study's validation objective (ties: the
lowest Optuna trial number, else the earliest run: study/record/read.py). Its model is
assembled (fsvae.packaged) from the run's `model/` artifact and the backbone and VAE entries
of the stage cache, then logged to the study's parent run as an MLflow pyfunc model named
`best_model`, by "models from code"
(study/model/pyfunc.py): MLflow 3 refuses to unpickle a model unless told to, so nothing is
pickled. The model ships the fsvae package (code_paths) and the assembled folder, so that
`mlflow.pyfunc.load_model(uri)` needs torch, torchvision and MLflow, neither this repository
nor the cache. The parent and the best trial run are tagged with the model's URI.
"""

from __future__ import annotations

import shlex
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service import utils as tracking_utils
from mlflow.types import ColSpec, Schema, TensorSpec

import fsvae
from fsvae import config as config_mod
from fsvae import packaged
from study.errors import StudyError
from study.plan import plan as plan_mod
from study.plan.storage import default_tracking_uri
from study.record import read as record
from study.record import write as records
from study.record.schema import BEST_MODEL, BEST_MODEL_RUN, MODE, OBJECTIVE, ROLE, STORAGE
from study.secrets import redact, redact_text

MODEL_NAME = "best_model"
MODEL_CODE = Path(__file__).with_name("pyfunc.py")


def log_best_model(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    cache_dir: str | None,
    objective: str | list[str] | None,
    mode: str | list[str] | None,
) -> str:
    """Logs the best trial's model (best_trial) to the parent run; returns its URI
    (models:/<id>). `objective` and `mode`: the study's, one or several (None: the
    default, study.record.read.goals)."""
    best = best_trial(client, experiment_id, parent_run_id, objective, mode)
    objective = record.goals(objective, mode)[0][0]
    if cache_dir is None:
        raise StudyError(
            "this study ran without a stage cache (--no-cache), which is where "
            "the best trial's backbone is kept: re-run the study with the cache"
        )
    with tempfile.TemporaryDirectory(prefix="fsvae-model-") as tmp:
        model = _assemble(client, best, parent_run_id, Path(cache_dir), Path(tmp))
        uri = _log(client, parent_run_id, Path(tmp) / "packaged", model, best, objective)
    client.set_tag(parent_run_id, BEST_MODEL, uri)
    client.set_tag(parent_run_id, BEST_MODEL_RUN, best.run_id)
    client.set_tag(best.run_id, BEST_MODEL, uri)
    return uri


def log_best_of_experiment(
    tracking_uri: str, experiment: str, cache_dir: str | None = None, parent_run: str | None = None
) -> str:
    """log_best_model for the study of an experiment (`fsvae-study analyze --log-best`):
    the parent run a reader reads (study.record.read.choose_parent: `parent_run`, else the latest
    with trials), its objectives; the cache the study used (its study.json), unless
    `cache_dir` is given."""
    from study.identity import names as identity

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise StudyError(f"no experiment {experiment!r} at {redact(tracking_uri)}")
    parents = identity.parents(client, exp.experiment_id)[::-1]  # in start order
    if not parents:
        raise StudyError(f"experiment {experiment!r} has no study run (tag {ROLE}=study)")
    try:
        chosen = parents[
            record.choose_parent(
                [
                    (
                        p.info.run_id,
                        p.info.start_time,
                        identity.has_trials(client, exp.experiment_id, p.info.run_id),
                    )
                    for p in parents
                ],
                parent_run,
            )
        ]
    except ValueError:
        raise StudyError(
            f"--parent-run {parent_run}: not a study run of experiment {experiment!r}"
        ) from None
    tags = chosen.data.tags
    cache = cache_dir or _study_cache(tags.get(STORAGE), experiment)
    return log_best_model(
        client, exp.experiment_id, chosen.info.run_id, cache, tags.get(OBJECTIVE), tags.get(MODE)
    )


def best_trial(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    objective: str | list[str] | None,
    mode: str | list[str] | None,
) -> record.Entry:
    """The study's best trial (study.record.read.best_trials; with several objectives, the
    front's first: the best by the primary objective)."""
    goals = record.goals(objective, mode)
    bad = [m for _, m in goals if m not in ("max", "min")]
    if bad:
        raise StudyError(f"mode {bad[0]!r}: expected max or min")
    entries = record.read(client, experiment_id, parent_run_id)
    best = record.best_trials(record.frame(entries), goals)
    if best.empty:
        raise StudyError(
            f"study run {parent_run_id} has no finished trial with a value of "
            f"{goals[0][0]}: there is no best model to log"
        )
    return entries[best.iloc[0]["trial_key"]]


def load_model(run_or_uri: str, tracking_uri: str) -> packaged.PackagedModel:
    """The torch module of a logged best model: from a run id (the model logged to it, or
    the model it is tagged with) or a runs:/ or models:/ URI."""
    if (
        tracking_uri.startswith("sqlite:///")
        and not Path(tracking_uri[len("sqlite:///") :]).is_file()
    ):
        raise StudyError(
            f"no MLflow store at {redact(tracking_uri)} (pass --tracking-uri, or "
            f"--storage where the study ran)"
        )
    uri = model_uri(MlflowClient(tracking_uri), run_or_uri)
    with _tracking(tracking_uri):
        try:
            return mlflow.pyfunc.load_model(uri).unwrap_python_model().model
        except (MlflowException, OSError) as e:
            raise StudyError(
                f"cannot load the model {redact(uri)} from {redact(tracking_uri)}: "
                f"{redact_text(str(getattr(e, 'message', e)))}"
            ) from None


def model_uri(client: MlflowClient, run_or_uri: str) -> str:
    """A runs:/ or models:/ URI as it is; for a run id, the URI the run is tagged with (a
    study's run and its best trial's), else the best_model logged to that run."""
    if ":/" in run_or_uri:
        return run_or_uri
    try:
        run = client.get_run(run_or_uri)
    except MlflowException:
        raise StudyError(
            f"--model {run_or_uri!r}: no such run at "
            f"{redact(client.tracking_uri)}; expected a run id, "
            f"runs:/RUN_ID/{MODEL_NAME} or models:/NAME/VERSION"
        ) from None
    return run.data.tags.get(BEST_MODEL) or f"runs:/{run_or_uri}/{MODEL_NAME}"


def rerun_command(params: dict[str, str], preset: str, cache_dir: Path) -> str:
    """`fsvae-study trial` with the keys of a trial run that differ from `preset`: it
    rebuilds that trial's cache entries into `cache_dir`."""
    base = {p.key: p.value for p in records.params_of(config_mod.resolve({}, preset=preset))}
    sets = [
        a
        for k, v in sorted(params.items())
        if k != "data" and base.get(k) != v
        for a in ("--set", f"{k}={v}")
    ]
    return shlex.join(
        [
            "fsvae-study",
            "trial",
            "--data",
            params["data"],
            "--preset",
            preset,
            *sets,
            "--cache-dir",
            str(cache_dir),
        ]
    )


def default_store(storage: str | None) -> str:
    """The embedded store of studies under `storage` (default ./fsvae-studies)."""
    return default_tracking_uri(Path(storage or plan_mod.DEFAULT_STORAGE))


# -- internals ------------------------------------------------------------------------------


def _assemble(
    client: MlflowClient, best: record.Entry, parent_run_id: str, cache: Path, tmp: Path
) -> packaged.PackagedModel:
    if not client.list_artifacts(best.run_id, "model"):
        raise StudyError(
            f"the best trial run {best.run_id} has no model/ artifact: it ran "
            f"on a version of fsvae-study that did not keep trials' models; "
            f"re-run it"
        )
    part = Path(client.download_artifacts(best.run_id, "model", str(tmp / "trial")))
    try:
        return packaged.assemble(part, cache, tmp / "packaged")
    except packaged.MissingEntry as e:
        preset = client.get_run(parent_run_id).data.params.get("preset", "paper")
        raise StudyError(
            f"cannot build the best trial's model (run {best.run_id}): {e}; it was removed, "
            f"or the trial ran without that cache. Rebuild it by re-running the trial on "
            f"the code and kind of device the study used (they are part of the key), then "
            f"log the model again: {rerun_command(best.params, preset, cache)}"
        ) from None


def _log(
    client: MlflowClient,
    parent_run_id: str,
    folder: Path,
    model: packaged.PackagedModel,
    best: record.Entry,
    objective: str,
) -> str:
    """Logs the assembled folder as a pyfunc model of the parent run, whose status stays
    what it was (the fluent API that links a model to a run ends the run)."""
    status = client.get_run(parent_run_id).info.status
    with _tracking(client.tracking_uri):
        mlflow.start_run(run_id=parent_run_id)
        try:
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(MODEL_CODE),
                artifacts={"model": str(folder)},
                code_paths=[str(Path(fsvae.__file__).parent)],
                signature=_signature(model),
                pip_requirements=_requirements(),
                params=best.params,
                metadata={
                    "classes": model.classes,
                    "method": model.method,
                    "minority_classes": model.spec["minority_classes"],
                    "load_size": model.load_size,
                    "image_size": model.image_size,
                    "trial_run_id": best.run_id,
                    "objective": objective,
                    "objective_value": best.metrics[objective],
                },
            )
        finally:
            mlflow.end_run()
            client.update_run(parent_run_id, status=status)
    return info.model_uri


def _signature(model: packaged.PackagedModel) -> ModelSignature:
    pixels = TensorSpec(np.dtype(np.uint8), (-1, 3, model.load_size, model.load_size))
    return ModelSignature(
        inputs=Schema([pixels]), outputs=Schema([ColSpec("float", c) for c in model.classes])
    )


def _requirements() -> list[str]:
    """What loading the model needs, at the versions that logged it."""
    pinned = [
        f"{name}=={version(name).split('+')[0]}"  # no local part (+cu130)
        for name in ("mlflow", "torch", "torchvision")
    ]
    return pinned + ["numpy", "pandas"]


def _study_cache(storage: str | None, name: str) -> str | None:
    """The stage cache a study used: its study.json's, else <storage>/cache."""
    if storage is None:
        raise StudyError(f"study {name!r} records no storage: give its cache directory")
    try:
        plan = plan_mod.read(storage, name)
    except StudyError:  # a study.json of another version: the default place
        plan = None
    return plan.cache_dir if plan is not None else str(Path(storage) / "cache")


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """MLflow's fluent API reads the global tracking URI: set it for the call, then restore
    it. MLflow's advice to log an input example is left out: the signature says it all."""
    before = mlflow.get_tracking_uri() if tracking_utils.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            yield
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # MLflow's hint omits None
