"""The PNGs `fsvae-study figures` draws from a study's record, for each kind of study.

- Grid: `<set>_acc_h_vs_n_f.png`, `<set>_acc_vs_n_f.png`: the metric against n_f, one line
  per table row (method, sampling factor, differing keys), error bars = std over seeds.
- Optuna search: the same files, the best trial per stratum by the validation objective
  (several objectives: each stratum's Pareto-front trials, as points).
- Confirmation: `val_test_acc_h_by_configuration.png`, `val_test_acc_by_configuration.png`:
  per rerun configuration, the mean and 95% interval over the new seeds on val and test,
  beside the value its trial had in the search (one seed).
- `curves_<run>.png`: the learning curves of a trial (the paper's Figures 3 and 4), rebuilt
  from MLflow's metric histories and drawn by study.figures.plots.curves, the same function that
  drew the trial's own figure when it ran: by default of the study's best trials
  (study.record.read: the best by the validation objective, or each trial of the Pareto
  front), else of the run named.

Each figure plots the numbers of the study's table (`fsvae-study table`), so a figure and
its table cannot disagree.
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

from results.confirm_table import confirm_table  # noqa: E402
from results.errors import ResultsError  # noqa: E402
from results.grid import grid_table  # noqa: E402
from results.search import search_table  # noqa: E402
from results.store import Study  # noqa: E402
from results.table import METRICS, Table  # noqa: E402
from study.figures.plots import curves  # noqa: E402
from study.record.read import best_trials, one_run_per_trial  # noqa: E402
from study.record.schema import CURVE_KEYS  # noqa: E402

DPI = 110


def metric_figures(study: Study, metric_set: str, out: Path) -> list[Path]:
    """One PNG per metric (acc_h, acc) of the study's table; returns the paths written.
    A confirmation shows val and test together, whatever `metric_set`."""
    kind = study.table_kind
    if kind == "confirm":
        table, name = confirm_table(study, METRICS), "val_test_{}_by_configuration.png"
    else:
        build = search_table if kind == "optuna" else grid_table
        table, name = build(study, metric_set), f"{metric_set}_{{}}_vs_n_f.png"
    draw = {"grid": _plot_grid, "optuna": _plot_search, "confirm": _plot_confirm}[kind]
    paths = []
    for metric in table.metrics:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        draw(ax, table, metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        paths.append(_save(fig, out / name.format(metric)))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _plot_grid(ax, table: Table, metric: str) -> None:
    """Mean ± std (over seeds) per row; a single-seed point gets no bar, not a zero bar.
    Rows are nudged apart along x (by a few percent of n_f) so their bars do not overlap."""
    mine = table.cells[table.cells["metric"] == metric]
    for i, row in enumerate(table.rows):
        g = mine[mine["row"] == row].sort_values("n_f")
        yerr = [0.0 if math.isnan(s) else s for s in g["std"]]
        nudge = 1 + 0.02 * (i - (len(table.rows) - 1) / 2)
        ax.errorbar(g["n_f"] * nudge, g["mean"], yerr=yerr, marker="o", capsize=3, label=row)
    n_fs = sorted(mine["n_f"].unique())
    ax.set_xticks(n_fs, [str(n) for n in n_fs])
    _labels(ax, table, metric, "mean ± std over seeds")


def _plot_search(ax, table: Table, metric: str) -> None:
    """The best trial per stratum joined by a line; with several objectives, each stratum's
    Pareto-front trials as points (no one of them is the stratum's value)."""
    study, cells = table.study, table.cells
    g = cells[(cells["metric"] == metric) & cells["value"].notna()].sort_values("n_f")
    if len(study.objectives) > 1:
        ax.plot(
            g["n_f"],
            g["value"],
            marker="o",
            linestyle="none",
            label=f"Pareto-front trials per stratum (on {', '.join(study.objectives)})",
        )
    else:
        ax.plot(
            g["n_f"],
            g["value"],
            marker="o",
            label=f"best trial per stratum (by {study.objective}, {study.mode})",
        )
    for _, r in g.iterrows():
        ax.annotate(
            r["method"] + (f" x{r['sampling_factor']}" if r["sampling_factor"] else ""),
            (r["n_f"], r["value"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(4, 4),
        )
    ax.set_xticks(sorted(g["n_f"].dropna().unique()))
    _labels(
        ax,
        table,
        metric,
        "best trial per stratum" if len(study.objectives) == 1 else "Pareto front",
    )


def _labels(ax, table: Table, metric: str, how: str) -> None:
    ax.set_xlabel("n_f (images per minority class)")
    ax.set_ylabel(f"{table.metric_set} {metric} (%)")
    ax.set_title(f"{table.study.name}: {table.metric_set} {metric} vs n_f ({how})", fontsize=10)


def _plot_confirm(ax, table: Table, metric: str) -> None:
    """Per configuration (x): the mean and 95% interval over the new seeds on val and on
    test, and the value its trial had in the search, each a little apart."""
    cells = table.cells[table.cells["metric"] == metric]
    x = {row: i for i, row in enumerate(table.rows)}
    for shift, metric_set in ((-0.12, "val"), (0.12, "test")):
        g = cells[cells["metric_set"] == metric_set]
        low = [0.0 if math.isnan(v) else m - v for m, v in zip(g["mean"], g["ci95_low"])]
        high = [0.0 if math.isnan(v) else v - m for m, v in zip(g["mean"], g["ci95_high"])]
        ax.errorbar(
            [x[r] + shift for r in g["row"]],
            g["mean"],
            yerr=[low, high],
            marker="o",
            capsize=3,
            linestyle="none",
            label=f"{metric_set}: mean, 95% CI over seeds",
        )
        searched = g[g["search_value"].notna()]
        ax.plot(
            [x[r] + shift for r in searched["row"]],
            searched["search_value"],
            marker="x",
            linestyle="none",
            color="grey",
            label="its trial in the search (one seed)" if metric_set == "val" else None,
        )
    ax.set_xticks(range(len(table.rows)), table.rows, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(
        f"{table.study.name}: {metric} per configuration of the search {table.study.confirms}",
        fontsize=10,
    )


# -- learning curves ------------------------------------------------------------------------


def pick_run(study: Study, run: str | None) -> pd.Series:
    """The trial run named by id or run name; by default the study's best trial
    (study.record.read, among the runs a table counts): with several objectives no one
    trial is best, and ResultsError asks for --run."""
    if run:
        return _named(study, run)
    if len(study.objectives) > 1:
        raise ResultsError(
            f"experiment {study.name!r} optimised {study.objective}: no trial "
            f"is best, so pass --run (a Pareto-front trial of `fsvae-study "
            f"table`)"
        )
    return _best(study).iloc[0]


def _named(study: Study, run: str) -> pd.Series:
    trials = study.trials
    hit = trials[trials["run_id"] == run]
    if hit.empty:
        hit = trials[trials["run_name"] == run]
    if hit.empty:
        names = ", ".join(sorted(trials["run_name"].dropna())[:10])
        raise ResultsError(
            f"--run {run!r}: no trial run with that id or name in "
            f"experiment {study.name!r}; names there: {names or 'none'}"
        )
    if len(hit) > 1:
        raise ResultsError(
            f"--run {run!r} names {len(hit)} runs ({', '.join(hit['run_id'])}); pass a run id"
        )
    return hit.iloc[0]


def _best(study: Study, missing_ok: bool = False) -> pd.DataFrame:
    """The study's best trials (one, or the Pareto front), best first; when no finished
    trial has the objectives: none with `missing_ok`, else ResultsError."""
    counted, _ = one_run_per_trial(study.trials)
    best = best_trials(counted, study.goals)
    if best.empty and not missing_ok:
        raise ResultsError(
            f"experiment {study.name!r} has no finished trial run with "
            f"{study.objective}; pass --run"
        )
    return best


def history_rows(tracking_uri: str, run_id: str) -> list[dict]:
    """The fsvae progress rows of one trial, rebuilt from MLflow's metric histories: one row
    per (stage, epoch) with the curve keys, plus {"stage", "best_epoch"} where logged."""
    client = MlflowClient(tracking_uri)
    rows: dict[tuple[str, int], dict] = {}
    best = []
    for stage, keys in CURVE_KEYS.items():
        for key in keys:
            history = sorted(
                client.get_metric_history(run_id, f"{stage}_{key}"), key=lambda m: m.timestamp
            )  # a re-logged epoch: last value wins
            for m in history:
                rows.setdefault((stage, m.step), {"stage": stage, "epoch": m.step})[key] = m.value
        logged = client.get_metric_history(run_id, f"{stage}_best_epoch")
        if logged:
            best.append({"stage": stage, "best_epoch": int(logged[-1].value)})
    order = {s: i for i, s in enumerate(CURVE_KEYS)}
    return sorted(rows.values(), key=lambda r: (order[r["stage"]], r["epoch"])) + best


def curve_figure(study: Study, run: str | None, out: Path) -> Path | None:
    """curves_<run name>.png for the run `pick_run` chooses; None when it logged no curves."""
    return _curves(study, pick_run(study, run), out)


def curve_figures(study: Study, run: str | None, out: Path) -> list[Path]:
    """The curves of the run named, else of each of the study's best trials (several
    objectives: the Pareto front; none where no trial has the objective); runs that logged
    no curves get none."""
    chosen = (
        [_named(study, run)] if run else [r for _, r in _best(study, missing_ok=True).iterrows()]
    )
    return [p for p in (_curves(study, r, out) for r in chosen) if p is not None]


def _curves(study: Study, chosen: pd.Series, out: Path) -> Path | None:
    rows = history_rows(study.tracking_uri, chosen["run_id"])
    name = chosen["run_name"] if isinstance(chosen["run_name"], str) else chosen["run_id"]
    metrics = "  ".join(
        f"{k} {chosen[k] * 100:.2f}"
        for k in ("val_acc_h", "test_acc_h", "test_acc")
        if k in chosen and not pd.isna(chosen[k])
    )
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return curves(rows, out / f"curves_{safe}.png", f"{study.name}: {name}  {metrics}")
