"""A finished search of n synthetic trials, written straight to MLflow and Optuna for the reads.

What `resume`, `table` and `analyze` read at 10,000 trials, without running 10,000 trials:
the parent run and plan as a study writes them, each trial's run by its TrialRecorder fed
by the synthetic trial (no artifacts or figures), and the matching Optuna study.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from studies import SPACE, forget


def synthesize(storage: Path, data: Path, name: str, n: int) -> dict:
    """A finished n-trial search written straight to MLflow and Optuna (module docstring)."""
    import optuna
    from mlflow.tracking import MlflowClient

    import search_spaces
    from fsvae import config as config_mod
    from fsvae import data as data_mod
    from fsvae.trial import resolve
    from study.driver.trainable import run_name
    from study.hooks.bench_trial import synthetic_trial
    from study.identity import lease
    from study.identity import parent as parent_mod
    from study.plan import plan as plan_mod
    from study.plan.making import make_plan
    from study.record import provenance, stores
    from study.record import write as records
    from study.record.read import short_key
    from study.record.schema import OPTUNA_PARENT, POINT, STRATUM, STUDY, TRIAL_ID
    from study.search.searcher import study_name, trial_key
    from study.search.sync import RUN_ID

    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    forget(storage, name)
    plan = make_plan(SPACE, str(data), name=name, storage=str(storage), num_samples=n)
    space = plan.search_space()
    storage_url = plan.optuna_storage
    if storage_url is None:  # make_plan gives a search its Optuna store
        raise RuntimeError(f"{SPACE}: no Optuna storage in the plan")
    stores.ensure_mlflow_store(plan.tracking_uri)
    stores.ensure_optuna_store(storage_url)
    client = MlflowClient(plan.tracking_uri)
    exp_id = parent_mod.ensure_experiment(client, name, storage)
    plan = plan.replace(sessions=1, experiment_id=exp_id)
    held = lease.acquire(plan.tracking_uri, name, "run")  # released: a resume takes it
    parent = parent_mod.start_parent(client, exp_id, plan, space, held)
    held.release()
    plan = plan.replace(parent_run_id=parent)
    plan_mod.write(plan)
    parent_mod.log_plan(client, parent, plan)
    git = provenance.git_state()
    fingerprint = data_mod.fingerprint(str(data))
    dataset = provenance.dataset_input(str(data), fingerprint, "trial")
    ((stratum, label),) = [
        (s, ",".join(f"{k}={v}" for k, v in s.items())) for s in space.stratum_values()
    ]
    asker = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kwargs = {"connect_args": {"timeout": 60}} if storage_url.startswith("sqlite") else {}
    study = optuna.create_study(
        storage=optuna.storages.RDBStorage(storage_url, engine_kwargs=kwargs),
        study_name=study_name(name, label),
        directions=["maximize" if m == "max" else "minimize" for m in space.modes],
    )
    study.set_user_attr(OPTUNA_PARENT, parent)
    run = synthetic_trial("instant")
    frozen, batch = [], 500
    for i in range(n):
        asked = asker.ask()
        search_spaces.suggest(asked, space.params)
        params = dict(asked.params)
        cfg = resolve(config_mod.resolve({**plan.base, **params, **stratum}, preset=plan.preset))
        key = trial_key(label, i)
        # A new trial knows no earlier run (known=[]), as the driver hands a fresh key.
        rec = records.TrialRecorder(
            plan.tracking_uri,
            exp_id,
            parent,
            key,
            f"{short_key(key)} {run_name(cfg)}",
            tags={
                STRATUM: label,
                STUDY: name,
                TRIAL_ID: f"synth{i:05d}",
                POINT: json.dumps(params, sort_keys=True, default=str),
                **git,
            },
            dataset=dataset,
            known=[],
        )
        rec.start(config_mod.active_config(cfg))
        result = run(cfg, progress=rec.progress)
        rec.finish(result, None)
        frozen.append(
            optuna.trial.create_trial(
                params=params,
                distributions=dict(asked.distributions),
                values=[result["metrics"][o] for o in space.objectives],
                user_attrs={RUN_ID: rec.run_id},
            )
        )
        if len(frozen) == batch or i == n - 1:
            study.add_trials(frozen)
            frozen = []
        if (i + 1) % 500 == 0:
            print(f"  synthetic: {i + 1}/{n} runs ({time.perf_counter() - t0:.0f} s)", flush=True)
    client.set_terminated(parent, "FINISHED")
    return {"runs": n, "write_s": time.perf_counter() - t0}


def synthetic_ready(storage: Path, name: str, n: int) -> bool:
    """The synthetic study exists with n finished trial runs (for --keep)."""
    db = storage / "mlflow.db"
    if not (db.is_file() and (storage / name / "study.json").is_file()):
        return False
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return False
    runs = client.search_runs([exp.experiment_id], "tags.`fsvae.role` = 'trial'", max_results=50000)
    return len(runs) == n
