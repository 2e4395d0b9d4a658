"""PNG figures from a study's MLflow runs (what `fsvae-study figures` writes).

- `<set>_acc_h_vs_n_f.png`, `<set>_acc_vs_n_f.png`: the metric against n_f, one line per
  table row (method, sampling factor, differing keys), error bars = std over seeds; the same
  numbers as `fsvae-study table`, so a figure and its table cannot disagree. For an Optuna
  study: the best trial per stratum (by the validation objective).
- `curves_<run>.png`: the learning curves of one trial (the paper's Figures 3 and 4), rebuilt
  from MLflow's metric histories and drawn by study.plots.curves, the same function that
  drew the trial's own figure when it ran.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mlflow.tracking import MlflowClient  # noqa: E402

from results import ResultsError, Study, build_table  # noqa: E402
from results.runs import one_run_per_trial  # noqa: E402
from study.plots import curves  # noqa: E402
from study.schema import CURVE_KEYS  # noqa: E402


def metric_figures(study: Study, metric_set: str, out: Path) -> list[Path]:
    """One PNG per metric (acc_h, acc) against n_f; returns the paths written."""
    table = build_table(study, metric_set)
    paths = []
    for metric in table.metrics:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        if study.kind == "optuna":
            _plot_optuna(ax, table.cells, metric, study)
        else:
            _plot_grid(ax, table.cells, table.rows, metric)
        ax.set_xlabel("n_f (images per minority class)")
        ax.set_ylabel(f"{metric_set} {metric} (%)")
        how = "mean ± std over seeds" if study.kind != "optuna" else \
            "best trial per stratum" if len(study.objectives) == 1 else "Pareto front"
        ax.set_title(f"{study.name}: {metric_set} {metric} vs n_f ({how})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = out / f"{metric_set}_{metric}_vs_n_f.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _plot_grid(ax, cells: pd.DataFrame, rows: list[str], metric: str) -> None:
    """Mean ± std (over seeds) per row; a single-seed point gets no bar, not a zero bar.
    Rows are nudged apart along x (by a few percent of n_f) so their bars do not overlap."""
    mine = cells[cells["metric"] == metric]
    for i, row in enumerate(rows):
        g = mine[mine["row"] == row].sort_values("n_f")
        yerr = [0.0 if math.isnan(s) else s for s in g["std"]]
        nudge = 1 + 0.02 * (i - (len(rows) - 1) / 2)
        ax.errorbar(g["n_f"] * nudge, g["mean"], yerr=yerr, marker="o", capsize=3, label=row)
    n_fs = sorted(mine["n_f"].unique())
    ax.set_xticks(n_fs, [str(n) for n in n_fs])


def _plot_optuna(ax, cells: pd.DataFrame, metric: str, study: Study) -> None:
    """The best trial per stratum joined by a line; with several objectives, each stratum's
    Pareto-front trials as points (no one of them is the stratum's value)."""
    g = cells[(cells["metric"] == metric) & cells["value"].notna()].sort_values("n_f")
    if len(study.objectives) > 1:
        ax.plot(g["n_f"], g["value"], marker="o", linestyle="none",
                label=f"Pareto-front trials per stratum (on {', '.join(study.objectives)})")
    else:
        ax.plot(g["n_f"], g["value"], marker="o",
                label=f"best trial per stratum (by {study.objective}, {study.mode})")
    for _, r in g.iterrows():
        ax.annotate(r["method"] + (f" x{r['sampling_factor']}" if r["sampling_factor"] else ""),
                    (r["n_f"], r["value"]), fontsize=7, textcoords="offset points",
                    xytext=(4, 4))
    ax.set_xticks(sorted(g["n_f"].unique()))


def pick_run(study: Study, run: str | None) -> pd.Series:
    """The trial run named by id or run name; by default the finished trial that is best by
    the study's validation objective (never a test metric), among the runs a table counts."""
    trials = study.trials
    if run:
        hit = trials[trials["run_id"] == run]
        if hit.empty:
            hit = trials[trials["run_name"] == run]
        if hit.empty:
            names = ", ".join(sorted(trials["run_name"].dropna())[:10])
            raise ResultsError(f"--run {run!r}: no trial run with that id or name in "
                               f"experiment {study.name!r}; names there: {names or 'none'}")
        if len(hit) > 1:
            raise ResultsError(f"--run {run!r} names {len(hit)} runs "
                               f"({', '.join(hit['run_id'])}); pass a run id")
        return hit.iloc[0]
    if len(study.objectives) > 1:
        raise ResultsError(f"experiment {study.name!r} optimised {study.objective}: no trial "
                           f"is best, so pass --run (a Pareto-front trial of `fsvae-study "
                           f"table`)")
    counted, _ = one_run_per_trial(trials)
    fin = counted[counted["status"] == "FINISHED"]
    if study.objective in fin:
        fin = fin[fin[study.objective].notna()]
    else:
        fin = fin.iloc[0:0]
    if fin.empty:
        raise ResultsError(f"experiment {study.name!r} has no finished trial run with "
                           f"{study.objective}; pass --run")
    scores = fin[study.objective]
    return fin.loc[scores.idxmax() if study.mode == "max" else scores.idxmin()]


def history_rows(tracking_uri: str, run_id: str) -> list[dict]:
    """The fsvae progress rows of one trial, rebuilt from MLflow's metric histories: one row
    per (stage, epoch) with the curve keys, plus {"stage", "best_epoch"} where logged."""
    client = MlflowClient(tracking_uri)
    rows: dict[tuple[str, int], dict] = {}
    best = []
    for stage, keys in CURVE_KEYS.items():
        for key in keys:
            history = sorted(client.get_metric_history(run_id, f"{stage}_{key}"),
                             key=lambda m: m.timestamp)  # a re-logged epoch: last value wins
            for m in history:
                rows.setdefault((stage, m.step), {"stage": stage, "epoch": m.step})[key] = \
                    m.value
        logged = client.get_metric_history(run_id, f"{stage}_best_epoch")
        if logged:
            best.append({"stage": stage, "best_epoch": int(logged[-1].value)})
    order = {s: i for i, s in enumerate(CURVE_KEYS)}
    return sorted(rows.values(), key=lambda r: (order[r["stage"]], r["epoch"])) + best


def curve_figure(study: Study, run: str | None, out: Path) -> Path | None:
    """curves_<run name>.png for the chosen trial; None when it logged no curves."""
    chosen = pick_run(study, run)
    rows = history_rows(study.tracking_uri, chosen["run_id"])
    name = chosen["run_name"] if isinstance(chosen["run_name"], str) else chosen["run_id"]
    metrics = "  ".join(f"{k} {chosen[k] * 100:.2f}" for k in
                        ("val_acc_h", "test_acc_h", "test_acc")
                        if k in chosen and not pd.isna(chosen[k]))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return curves(rows, out / f"curves_{safe}.png", f"{study.name}: {name}  {metrics}")
