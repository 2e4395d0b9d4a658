"""The MLflow store the results tests read: a real SQLite store, written by the one writer
of hand-made records (helpers.StudyWriter: a parent run per study, one child run per trial,
params = the active config keys, metrics in [0, 1]), and the values a reader works out from
it by hand.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import results
from helpers import T0, StudyWriter, grid_params

# A grid study: (method, sampling_factor, latent_dim, n_f, seed, test_acc_h, test_acc, status,
# extra params). Bookkeeping keys (data, device, data_workers) vary without splitting rows.
GRID = [
    ("plain", None, None, 5, 0, 0.09, 0.49, "FINISHED", {}),  # older duplicate of the next
    ("plain", None, None, 5, 0, 0.00, 0.50, "FINISHED", {}),
    ("plain", None, None, 5, 1, 0.02, 0.52, "FINISHED", {"device": "cuda", "data_workers": "8"}),
    ("plain", None, None, 5, 2, 0.04, 0.57, "FINISHED", {}),
    ("plain", None, None, 10, 0, 0.10, 0.55, "FINISHED", {}),
    ("oversample", 30, None, 5, 0, 0.20, 0.54, "FINISHED", {}),
    ("oversample", 30, None, 5, 1, 0.30, 0.56, "FINISHED", {}),
    ("oversample", 30, None, 5, 2, None, None, "KILLED", {}),
    ("vae", 30, 32, 5, 0, 0.40, 0.60, "FINISHED", {}),
    ("vae", 30, 32, 5, 1, 0.44, 0.61, "FINISHED", {}),
    ("vae", 30, 32, 5, 2, 0.48, 0.62, "FINISHED", {}),
    ("vae", 30, 32, 5, 3, None, None, "FAILED", {}),
    ("vae", 30, 64, 5, 0, 0.30, 0.58, "FINISHED", {}),
    ("vae", 30, 64, 5, 1, 0.34, 0.60, "FINISHED", {}),
    ("vae", 50, 32, 5, 0, 0.50, 0.63, "FINISHED", {}),
    ("vae", 50, 32, 5, 1, 0.52, 0.64, "FINISHED", {}),
    ("vae", 50, 32, 5, 2, 0.60, 0.65, "FINISHED", {}),
    ("vae", 50, 32, 10, 0, 0.55, 0.66, "FINISHED", {}),
    ("vae", 50, 32, 10, 1, 0.61, 0.70, "FINISHED", {}),
    ("crt", 30, None, 5, 0, 0.35, 0.59, "FINISHED", {}),
    ("crt", 30, None, 5, 1, 0.41, 0.60, "FINISHED", {}),
    ("crt", 30, None, 5, 2, 0.41, 0.60, "FINISHED", {}),
    ("crt", 50, None, 5, 0, 0.45, 0.62, "FINISHED", {}),
    ("crt", 50, None, 5, 1, 0.46, 0.62, "FINISHED", {}),
]

# Every GRID run read the data of cache key d1 except run 23 (d2: one train file fewer);
# each run's data_report.json says how many images of each list were usable.
DATA_KEYS = {i: "d2" if i == 23 else "d1" for i in range(len(GRID))}
USABLE = {"d1": (7702, 655, 4490), "d2": (7701, 655, 4490)}

# Every GRID run's test_acc_h_samples is its test_acc_h plus this (0.03 = 3 points).
SAMPLES_OFFSET = 0.03

# Typed by hand from GRID, in percent: (row label, n_f, metric) -> the seeds' values.
EXPECTED = {
    ("plain", 5, "acc_h"): [0, 2, 4],
    ("plain", 5, "acc"): [50, 52, 57],
    ("plain", 10, "acc_h"): [10],
    ("plain", 10, "acc"): [55],
    ("oversample x30", 5, "acc_h"): [20, 30],
    ("oversample x30", 5, "acc"): [54, 56],
    ("vae x30 [latent_dim=32]", 5, "acc_h"): [40, 44, 48],
    ("vae x30 [latent_dim=32]", 5, "acc"): [60, 61, 62],
    ("vae x30 [latent_dim=64]", 5, "acc_h"): [30, 34],
    ("vae x30 [latent_dim=64]", 5, "acc"): [58, 60],
    ("vae x50 [latent_dim=32]", 5, "acc_h"): [50, 52, 60],
    ("vae x50 [latent_dim=32]", 5, "acc"): [63, 64, 65],
    ("vae x50 [latent_dim=32]", 10, "acc_h"): [55, 61],
    ("vae x50 [latent_dim=32]", 10, "acc"): [66, 70],
    ("crt x30", 5, "acc_h"): [35, 41, 41],
    ("crt x30", 5, "acc"): [59, 60, 60],
    ("crt x50", 5, "acc_h"): [45, 46],
    ("crt x50", 5, "acc"): [62, 62],
}
ROW_ORDER = [
    "plain",
    "oversample x30",
    "vae x30 [latent_dim=32]",
    "vae x30 [latent_dim=64]",
    "vae x50 [latent_dim=32]",
    "crt x30",
    "crt x50",
]

# An Optuna search, strata n_f: (n_f, sampling_factor, latent_dim, val_acc_h, test_acc_h,
# test_acc, status). At n_f=5 the best TEST acc_h (0.70) is not the best by validation.
SEARCH = [
    (5, 10, 16, 0.50, 0.70, 0.60, "FINISHED"),
    (5, 30, 32, 0.60, 0.45, 0.61, "FINISHED"),
    (5, 30, 8, 0.55, 0.50, 0.62, "FINISHED"),
    (5, 30, 8, None, None, None, "FAILED"),
    (10, 30, 64, 0.52, 0.48, 0.62, "FINISHED"),
    (10, 50, 16, 0.65, 0.58, 0.66, "FINISHED"),
]


def data_report(usable: tuple[int, int, int]) -> dict:
    """A data_report.json as fsvae.data writes it, with these usable counts per list (and
    10 more listed in each than usable)."""
    splits = {s: {"listed": n + 10, "usable": n} for s, n in zip(("train", "val", "test"), usable)}
    return {
        "root": "/data/fs14",
        "layout": "fashionstyle14",
        "splits": splits,
        "summary": {"missing": 30},
        "problems": [],
    }


# An Optuna search run twice under one name, one stratum: (fsvae.trial_key, fsvae.trial_id,
# status, val_acc_h, test_acc_h, test_acc), in start order. Trial n_f=5#0 ran twice: its first
# run has the highest val_acc_h (0.90) but is not counted. Runs 6 and 7 were written before
# the trial_key tag existed and share a trial_id.
RERUN = [
    ("n_f=5#0", "a0", "FINISHED", 0.90, 0.30, 0.50),  # #0 again later: not counted
    ("n_f=5#1", "b0", "FINISHED", 0.52, 0.42, 0.55),  # counted: #1's finished run
    ("n_f=5#0", "a1", "FINISHED", 0.55, 0.45, 0.57),  # counted: #0's latest finished run
    ("n_f=5#1", "b1", "FAILED", None, None, None),  # #1 has a finished run: not counted
    ("n_f=5#2", "c0", "FAILED", None, None, None),  # #2 failed again later: not counted
    ("n_f=5#2", "c1", "FAILED", None, None, None),  # counted: #2's latest run
    (None, "t9", "FINISHED", 0.60, 0.48, 0.59),  # counted, and the best by validation
    (None, "t9", "KILLED", None, None, None),  # t9 has a finished run: not counted
]
RERUN_UNCOUNTED = [0, 3, 4, 7]

# A grid where vae ran at two backbone learning rates and crt at one, n_f=5, sampling factor
# 30: (method, backbone_lr, seed, test_acc_h, test_acc). Only vae logs latent_dim; noise
# ran only at the rate crt did not.
SETUPS = [
    ("vae", "0.1", 0, 0.70, 0.80),
    ("vae", "0.1", 1, 0.72, 0.80),
    ("vae", "0.1", 2, 0.74, 0.80),
    ("vae", "0.01", 0, 0.42, 0.60),
    ("vae", "0.01", 1, 0.44, 0.61),
    ("vae", "0.01", 2, 0.49, 0.62),
    ("crt", "0.01", 0, 0.40, 0.60),
    ("crt", "0.01", 1, 0.41, 0.60),
    ("crt", "0.01", 2, 0.43, 0.60),
    ("noise", "0.1", 0, 0.50, 0.60),
]

# A grid of the paper's Table 2 shape: its 5 method rows, n_f 5, 10, 30, 50 and seeds 0-2.
# Seed s of row r at n_f index j: acc_h 30 + 10 j + 2 r + 12.5 (s - 1) percent (std 12.5,
# the widest cells a table of percentages has), acc 55 + 3 j + r + 1.5 (s - 1).
TABLE2_ROWS = [("plain", None), ("oversample", 30), ("oversample", 50), ("vae", 30), ("vae", 50)]
TABLE2_NF = [5, 10, 30, 50]

# Learning curves of one run (GRID[18], the best by val_acc_h): stage -> key -> per-epoch
# values, and the best epochs; the figures tests rebuild the progress rows from them.
CURVES = {
    "backbone": {
        "train_loss": [2.0, 1.5, 1.0],
        "train_acc": [0.3, 0.5, 0.7],
        "val_acc": [0.2, 0.3, 0.35],
        "val_acc_h": [0.0, 0.1, 0.2],
        "lr": [0.01, 0.005, 0.0],
    },
    "vae": {
        "recon": [100.0, 80.0],
        "kl": [1.0, 2.0],
        "beta": [0.0, 5e-4],
        "loss": [100.0, 80.001],
        "val_recon": [110.0, 90.0],
        "val_kl": [1.5, 2.5],
    },
    "classifier": {
        "train_loss": [1.2, 0.8, 0.6],
        "train_acc": [0.5, 0.6, 0.8],
        "val_acc": [0.4, 0.5, 0.45],
        "val_acc_h": [0.3, 0.4, 0.35],
    },
}
BEST_EPOCHS = {"backbone": 2, "classifier": 1}
CURVE_RUN = 18


def make_store(root: Path) -> dict:
    """The experiments: grid (GRID), search (SEARCH, optuna), broken (only a failed run),
    search-rerun (RERUN, optuna), setups (SETUPS), table2-shape (TABLE2_ROWS x TABLE2_NF)
    and without-nf (one finished run that logged no n_f). Returns the tracking URI and the
    run ids of grid, search, search-rerun and setups, in order (ids, search_ids, rerun_ids,
    setups_ids)."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    out = {
        "uri": uri,
        "ids": _grid_experiment(client, root),
        "search_ids": _search_experiment(client, root),
    }
    StudyWriter(client, root, "broken", "grid").trial(
        0, grid_params("plain", None, None, 5, 0), {}, "FAILED"
    )
    out["rerun_ids"] = _rerun_experiment(client, root)
    out["setups_ids"] = _setups_experiment(client, root)
    _table2_experiment(client, root)
    without_nf = StudyWriter(client, root, "without-nf", "grid")
    params = {k: v for k, v in grid_params("plain", None, None, 5, 0).items() if k != "n_f"}
    without_nf.trial(0, params, {"test_acc_h": 0.1, "test_acc": 0.5}, "FINISHED")
    return out


def _grid_experiment(client: MlflowClient, root: Path) -> list[str]:
    grid = StudyWriter(client, root, "grid", "grid")
    ids = []
    for i, (method, sf, latent, n_f, seed, acc_h, acc, status, extra) in enumerate(GRID):
        params = {**grid_params(method, sf, latent, n_f, seed), **extra}
        metrics = {
            "test_acc_h": acc_h,
            "test_acc": acc,
            "val_acc_h": None if acc_h is None else acc_h + 0.01,
            "val_acc": None if acc is None else acc + 0.01,
            "test_acc_h_samples": None if acc_h is None else acc_h + SAMPLES_OFFSET,
        }
        ids.append(grid.trial(i, params, metrics, status, tags={"cache.data.key": DATA_KEYS[i]}))
        client.log_dict(ids[-1], data_report(USABLE[DATA_KEYS[i]]), "data_report.json")
    client.log_batch(
        ids[CURVE_RUN],
        metrics=[
            Metric(f"{stage}_{key}", v, T0 + epoch, epoch)
            for stage, keys in CURVES.items()
            for key, values in keys.items()
            for epoch, v in enumerate(values)
        ]
        + [Metric(f"{stage}_best_epoch", float(e), T0, 0) for stage, e in BEST_EPOCHS.items()],
    )
    return ids


def _search_experiment(client: MlflowClient, root: Path) -> list[str]:
    search = StudyWriter(client, root, "search", "optuna", "n_f")
    client.log_dict(
        search.parent, {"params": {"latent_dim": {}, "sampling_factor": {}}}, "space.json"
    )
    ids = []
    for i, (n_f, sf, latent, val, acc_h, acc, status) in enumerate(SEARCH):
        params = grid_params("vae", sf, latent, n_f, 0)
        metrics = {"val_acc_h": val, "test_acc_h": acc_h, "test_acc": acc}
        ids.append(search.trial(i, params, metrics, status, stratum=f"n_f={n_f}"))
    return ids


def _setups_experiment(client: MlflowClient, root: Path) -> list[str]:
    """SETUPS; its runs log their split sizes as metrics (the paper's: 7770, 661, 4528)."""
    setups = StudyWriter(client, root, "setups", "grid")
    ids = []
    sizes = {"data_usable_train": 7770, "data_usable_val": 661, "data_usable_test": 4528}
    for i, (method, lr, seed, acc_h, acc) in enumerate(SETUPS):
        params = {
            **grid_params(method, 30, 32 if method == "vae" else None, 5, seed),
            "backbone_lr": lr,
        }
        ids.append(
            setups.trial(i, params, {"test_acc_h": acc_h, "test_acc": acc, **sizes}, "FINISHED")
        )
    return ids


def _table2_experiment(client: MlflowClient, root: Path) -> None:
    table2 = StudyWriter(client, root, "table2-shape", "grid")
    i = 0
    for r, (method, sf) in enumerate(TABLE2_ROWS):
        for j, n_f in enumerate(TABLE2_NF):
            for seed in range(3):
                metrics = {
                    "test_acc_h": (30 + 10 * j + 2 * r + 12.5 * (seed - 1)) / 100,
                    "test_acc": (55 + 3 * j + r + 1.5 * (seed - 1)) / 100,
                }
                table2.trial(i, grid_params(method, sf, None, n_f, seed), metrics, "FINISHED")
                i += 1


def _rerun_experiment(client: MlflowClient, root: Path) -> list[str]:
    rerun = StudyWriter(client, root, "search-rerun", "optuna", "n_f")
    ids = []
    for i, (key, trial_id, status, val, acc_h, acc) in enumerate(RERUN):
        tags = {"fsvae.trial_id": trial_id, **({"fsvae.trial_key": key} if key else {})}
        metrics = {"val_acc_h": val, "test_acc_h": acc_h, "test_acc": acc}
        ids.append(
            rerun.trial(
                i, grid_params("vae", 30, 32, 5, 0), metrics, status, stratum="n_f=5", tags=tags
            )
        )
    return ids


_SHARED: dict = {}


def shared_store(tmp_path_factory) -> dict:
    """make_store once per session: creating an MLflow database costs seconds, and the
    figures tests read the same runs (nothing here writes to the store after it is built)."""
    if not _SHARED:
        _SHARED.update(make_store(tmp_path_factory.mktemp("mlflow")))
    return _SHARED


def table(store: dict, experiment: str = "grid", **kw) -> results.Table:
    return results.build_table(results.load_study(experiment, store["uri"]), **kw)


def tidy(t: results.Table) -> pd.DataFrame:
    """The CSV as a reader gets it back."""
    return pd.read_csv(
        StringIO(t.to_csv()),
        dtype={"sampling_factor": str, "seeds": str, "params": str},
        keep_default_na=True,
    )
