"""The stores `analyze` tests read: a real SQLite MLflow store and a real Optuna RDB storage
on SQLite, written the way a study writes them (docs/mlflow.md; study/search/searcher.py):
per search stratum an Optuna study `<name>/<stratum>` whose complete trials carry the user
attr mlflow_run_id, and per trial an MLflow child run tagged fsvae.trial_key
"<stratum>#<number>" with the trial's active config keys as params. The MLflow runs are
written by the one writer of hand-made records, helpers.StudyWriter.

Trials go into Optuna with `add_trial` (not a sampler) so that each test knows exactly
which parameters each branch has and which trials are on a Pareto front.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from helpers import StudyWriter, grid_params

SPACE = {  # space.json's params, as search_spaces resolves smoke-search's
    "beta_schedule": {"type": "categorical", "choices": ["linear", "cyclical", "sigmoid"]},
    "beta_max": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "beta_warmup_epochs": {
        "type": "int",
        "low": 2,
        "high": 10,
        "log": False,
        "when": {"beta_schedule": ["linear"]},
    },
    "beta_cycles": {
        "type": "int",
        "low": 1,
        "high": 4,
        "log": False,
        "when": {"beta_schedule": ["cyclical"]},
    },
    "beta_steepness": {
        "type": "float",
        "low": 0.1,
        "high": 2.0,
        "log": True,
        "when": {"beta_schedule": ["sigmoid"]},
    },
    "latent_dim": {"type": "int", "low": 8, "high": 64, "log": True},
    "sampling_factor": {"type": "categorical", "choices": [5, 10, 30]},
}
DISTRIBUTIONS = {
    "beta_schedule": CategoricalDistribution(["linear", "cyclical", "sigmoid"]),
    "beta_max": FloatDistribution(1e-5, 1e-1, log=True),
    "beta_warmup_epochs": IntDistribution(2, 10),
    "beta_cycles": IntDistribution(1, 4),
    "beta_steepness": FloatDistribution(0.1, 2.0, log=True),
    "latent_dim": IntDistribution(8, 64, log=True),
    "sampling_factor": CategoricalDistribution([5, 10, 30]),
}
OWN = {"linear": "beta_warmup_epochs", "cyclical": "beta_cycles", "sigmoid": "beta_steepness"}
# The importance search: trials per schedule (sigmoid below the minimum of 20).
BRANCH_TRIALS = {"linear": 22, "cyclical": 22, "sigmoid": 5}
FEW_TRIALS = 8  # a whole search below the minimum


def val_acc_h(params: dict) -> float:
    """The importance search's objective: beta_max alone decides it (0.2 to 0.6)."""
    return 0.2 + 0.1 * (math.log10(params["beta_max"]) + 5)


def random_params(rng: np.random.Generator, schedule: str) -> dict:
    """One trial's active parameters: the shared ones and its schedule's own one."""
    params = {
        "beta_schedule": schedule,
        "beta_max": float(10 ** rng.uniform(-5, -1)),
        "latent_dim": int(rng.integers(8, 65)),
        "sampling_factor": int(rng.choice([5, 10, 30])),
    }
    own = OWN[schedule]
    params[own] = {
        "beta_warmup_epochs": int(rng.integers(2, 11)),
        "beta_cycles": int(rng.integers(1, 5)),
        "beta_steepness": float(rng.uniform(0.1, 2.0)),
    }[own]
    return params


class SearchWriter:
    """One search experiment: its study record (helpers.StudyWriter) tagged with its Optuna
    storage (`optuna_url`, default optuna.db in `root`) and objectives, its Optuna study,
    then one trial at a time in both."""

    def __init__(
        self,
        client: MlflowClient,
        root: Path,
        name: str,
        objectives: list[str],
        label: str = "n_f=5",
        optuna_url: str | None = None,
    ):
        self.label, self.objectives = label, objectives
        url = optuna_url or f"sqlite:///{root / 'optuna.db'}"
        self.record = StudyWriter(
            client,
            root,
            name,
            "optuna",
            "n_f",
            tags={
                "fsvae.optuna_storage": url,
                "fsvae.objective": ",".join(objectives),
                "fsvae.mode": ",".join(["max"] * len(objectives)),
            },
        )
        client.log_dict(
            self.record.parent, {"params": SPACE, "objective": objectives}, "space.json"
        )
        self.study = optuna.create_study(
            storage=url, study_name=f"{name}/{label}", directions=["maximize"] * len(objectives)
        )
        self.run_ids: list[str] = []
        self.configs: list[dict] = []  # each trial's params, as its run logged them

    def trial(self, params: dict, metrics: dict, state: str = "COMPLETE") -> str:
        """An Optuna trial and its MLflow run (FINISHED, or FAILED for a failed trial)."""
        number = len(self.study.trials)
        config = {
            **grid_params("vae", params.get("sampling_factor", 30), None, 5, 0),
            **{k: v for k, v in params.items()},
        }
        rid = self.record.trial(
            100 + number,
            config,
            metrics,
            "FINISHED" if state == "COMPLETE" else "FAILED",
            stratum=self.label,
            tags={"fsvae.trial_key": f"{self.label}#{number}"},
        )
        values = [metrics[o] for o in self.objectives] if state == "COMPLETE" else None
        self.study.add_trial(
            optuna.trial.create_trial(
                state=TrialState[state],
                params=params,
                distributions={k: DISTRIBUTIONS[k] for k in params},
                values=values,
                user_attrs={"mlflow_run_id": rid} if state == "COMPLETE" else {},
            )
        )
        self.run_ids.append(rid)
        self.configs.append(config)
        return rid


def metrics_of(acc_h: float, acc: float, i: int) -> dict:
    """A trial's validation and test metrics; test values distinct per trial."""
    return {
        "val_acc_h": acc_h,
        "val_acc": acc,
        "test_acc_h": acc_h - 0.05 - i / 1000,
        "test_acc": acc - 0.02 - i / 1000,
        "test_acc_majority": 0.7 - i / 1000,
        "test_acc_minority": 0.3 + i / 1000,
    }


# (val_acc_h, val_acc) of the two-objective search, in trial order; None: a failed trial.
# On the front: #0, #1, #2 and #5 (#5 equals #1: neither dominates the other); #3 and #4
# are dominated by #0.
PARETO = [(0.50, 0.60), (0.55, 0.58), (0.45, 0.65), (0.50, 0.55), (0.40, 0.60), (0.55, 0.58), None]
FRONT = [1, 5, 0, 2]  # best first by val_acc_h, ties by trial number

# A grid: vae at sampling factors 30 and 50, n_f 5 and 10, seeds 0-2; test_acc_h and
# test_acc by (sampling_factor, n_f) per seed. Seed 2 at (50, 10) failed.
GRID_FX: dict[tuple[int, int], tuple[list[float | None], list[float | None]]] = {
    (30, 5): ([0.40, 0.44, 0.48], [0.60, 0.61, 0.62]),
    (50, 5): ([0.50, 0.52, 0.60], [0.63, 0.64, 0.65]),
    (30, 10): ([0.50, 0.55, 0.57], [0.64, 0.66, 0.65]),
    (50, 10): ([0.58, 0.61, None], [0.66, 0.70, None]),
}


# A confirmation of `few`: its two best trials' configurations rerun at seeds 1 and 2, as
# `fsvae-study confirm` records one; (val_acc_h, val_acc, test_acc_h, test_acc) per seed.
# The first is near 100: with 2 seeds its 95% interval reaches past 100 before the cut.
CONFIRMED = [
    [(0.95, 0.97, 0.93, 0.96), (0.99, 0.99, 0.97, 0.98)],
    [(0.50, 0.60, 0.45, 0.55), (0.52, 0.62, 0.47, 0.57)],
]


def make_stores(root: Path) -> dict:
    """Experiments importance (BRANCH_TRIALS), few (FEW_TRIALS), pareto (PARETO), grid-fx
    (GRID_FX) and few-confirm (CONFIRMED). Returns the tracking URI, the Optuna URL and run
    ids per search."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    out: dict[str, str | list[str]] = {"uri": uri, "optuna": f"sqlite:///{root / 'optuna.db'}"}
    rng = np.random.default_rng(0)
    imp = SearchWriter(client, root, "importance", ["val_acc_h"])
    schedules = [s for s, n in BRANCH_TRIALS.items() for _ in range(n)]
    for i, schedule in enumerate(rng.permutation(schedules)):
        params = random_params(rng, str(schedule))
        imp.trial(params, metrics_of(val_acc_h(params), 0.6, i))
    few = SearchWriter(client, root, "few", ["val_acc_h"])
    for i in range(FEW_TRIALS):
        params = random_params(rng, "linear")
        few.trial(params, metrics_of(val_acc_h(params), 0.6, i))
    pareto = SearchWriter(client, root, "pareto", ["val_acc_h", "val_acc"])
    for i, point in enumerate(PARETO):
        params = random_params(rng, "linear")
        if point is None:
            pareto.trial(params, {}, state="FAIL")
        else:
            pareto.trial(params, metrics_of(*point, i))
    out.update(importance=imp.run_ids, few=few.run_ids, pareto=pareto.run_ids)
    _grid_fx(client, root)
    out["confirmed"] = _confirmation(client, root, few)
    return out


def _confirmation(client: MlflowClient, root: Path, search: SearchWriter) -> list[str]:
    """few-confirm: a grid whose parent run names the search `few`, rerunning its two best
    configurations (by val_acc_h) with seeds 1 and 2."""
    confirmation = StudyWriter(client, root, "few-confirm", "grid", tags={"fsvae.confirms": "few"})
    best = sorted(range(len(search.configs)), key=lambda i: -search.study.trials[i].values[0])
    ids: list[str] = []
    for rank, values in zip(best[:2], CONFIRMED):
        for seed, (vh, va, th, ta) in enumerate(values, start=1):
            params = {**search.configs[rank], "seed": seed}
            metrics = {"val_acc_h": vh, "val_acc": va, "test_acc_h": th, "test_acc": ta}
            ids.append(
                confirmation.trial(
                    300 + len(ids),
                    params,
                    metrics,
                    "FINISHED",
                    tags={"fsvae.trial_key": f"grid:{len(ids)}"},
                )
            )
    return ids


def _grid_fx(client: MlflowClient, root: Path) -> None:
    grid = StudyWriter(client, root, "grid-fx", "grid")
    i = 0
    for (sf, n_f), (acc_h, acc) in GRID_FX.items():
        for seed, (h, a) in enumerate(zip(acc_h, acc)):
            status = "FAILED" if h is None else "FINISHED"
            grid.trial(
                200 + i,
                grid_params("vae", sf, 32, n_f, seed),
                {"test_acc_h": h, "test_acc": a},
                status,
            )
            i += 1


_SHARED: dict = {}


def shared_stores(tmp_path_factory) -> dict:
    """make_stores once per session: the MLflow database alone takes seconds to create.
    Tests that analyse write only under analysis/ of a parent run, which no test reads
    before it wrote it."""
    if not _SHARED:
        _SHARED.update(make_stores(tmp_path_factory.mktemp("analysis-stores")))
    return _SHARED
