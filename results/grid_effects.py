"""A grid study's effect of each key it varied: per value, the mean and the paired
difference over seeds with their intervals, as rows and as one figure per key.

The estimate: for a key K (n_f, sampling_factor, ...) and each setting of the other keys
(every other config key equal, a key a run does not use counting as one more value), the
mean of each value of K over seeds with its 95% Student-t interval (results.table, as the
tables' cells), and for every value after the first (in the tables' order) the paired
difference from the first: the per-seed differences between runs of the same seed, with
their mean and 95% Student-t interval. Seeds share the split and the backbone's
randomness, so pairing removes what varies from seed to seed. A key that changes which
other keys apply (`method`: only vae has latent_dim) is compared only where nothing else
differs; `fsvae-study table --compare A:B` pairs methods on the keys both use.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from results.grid import finished_runs  # noqa: E402
from results.store import Study  # noqa: E402
from results.table import METRICS, PERCENT, method_key, num_key, summarize  # noqa: E402

UNSET = "unset"  # a key the run does not use (sampling_factor for plain)


def grid_effects(
    study: Study, metric_set: str = "test", metrics: tuple[str, ...] = METRICS
) -> tuple[pd.DataFrame, list[str]]:
    """Every varied key's effect (see the module's docstring), one row per key, setting,
    value and metric, in percent; plus the notes on runs left out and keys not compared."""
    runs, notes = finished_runs(study, metric_set, metrics)
    configs = [_config(r) for r in runs.itertuples(index=False)]
    frames = []
    for key in varied_keys(configs):
        rows = key_effects(runs, configs, key, metric_set, metrics)
        if rows.empty:
            notes.append(
                f"{key}: no two of its values ran at one setting of the other keys "
                f"(a key that changes which keys apply; for methods see "
                f"`fsvae-study table --compare A:B`)."
            )
        frames.append(rows)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), notes


def _config(run) -> dict[str, str]:
    """A run's configuration as strings, seed left out (it is what is averaged over)."""
    cfg = {"method": run.method, "n_f": str(run.n_f), **dict(run.extra)}
    if run.sampling_factor:
        cfg["sampling_factor"] = str(run.sampling_factor)
    return cfg


def varied_keys(configs: list[dict[str, str]]) -> list[str]:
    """Keys set to two or more values among the runs, in a stable order."""
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({c[k] for c in configs if k in c}) > 1]


def value_order(key: str, values) -> list[str]:
    """Methods in the paper's order, numbers by value, then text."""
    return sorted(set(values), key=method_key if key == "method" else num_key)


def key_effects(
    runs: pd.DataFrame,
    configs: list[dict[str, str]],
    key: str,
    metric_set: str,
    metrics: tuple[str, ...],
) -> pd.DataFrame:
    """Rows (key, setting, value, metric, mean, std, n, ci95_low, ci95_high, reference,
    diff_mean, diff_low, diff_high, diff_n, seeds) for each setting of the other keys that
    ran two or more values of `key`."""
    mine = [i for i, c in enumerate(configs) if key in c]
    others = sorted({k for i in mine for k in configs[i]} - {key})
    shown = [k for k in others if len({configs[i].get(k, UNSET) for i in mine}) > 1]
    groups: dict[tuple, list[int]] = {}
    for i in mine:
        groups.setdefault(tuple(configs[i].get(k, UNSET) for k in others), []).append(i)
    records = []
    for members in groups.values():
        values = value_order(key, (configs[i][key] for i in members))
        if len(values) < 2:
            continue
        first = configs[members[0]]
        setting = ", ".join(f"{k}={first.get(k, UNSET)}" for k in shown) or "(all)"
        for m in metrics:
            per_value = {
                v: _by_seed(runs, [i for i in members if configs[i][key] == v], f"{metric_set}_{m}")
                for v in values
            }
            records += _rows(key, setting, m, per_value, values)
    return pd.DataFrame(records)


def _by_seed(runs: pd.DataFrame, rows: list[int], column: str) -> dict[str, float]:
    """seed -> the metric in percent (one run per configuration and seed: finished_runs
    keeps the latest)."""
    picked = runs.iloc[rows]
    return {str(s): float(v) * 100.0 for s, v in zip(picked["seed"], picked[column])}


def _rows(
    key: str, setting: str, metric: str, per_value: dict[str, dict[str, float]], values: list[str]
) -> list[dict]:
    """Each value's summary over seeds, and its paired difference from the first value."""
    ref = per_value[values[0]]
    out = []
    for v in values:
        mine = per_value[v]
        row = {
            "key": key,
            "setting": setting,
            "value": v,
            "metric": metric,
            **summarize(list(mine.values()), PERCENT),
            "reference": values[0],
            "seeds": ";".join(sorted(mine, key=num_key)),
        }
        if v != values[0]:
            paired = sorted(set(mine) & set(ref), key=num_key)
            diff = summarize([mine[s] - ref[s] for s in paired])
            row.update(
                {
                    "diff_mean": diff["mean"],
                    "diff_low": diff["ci95_low"],
                    "diff_high": diff["ci95_high"],
                    "diff_n": diff["n"],
                }
            )
        out.append(row)
    return out


def effect_figure(
    effects: pd.DataFrame, key: str, metrics: tuple[str, ...], path: Path, title: str
) -> Path:
    """One panel per metric: the mean over seeds per value of `key`, one line per setting
    of the other keys, bars = the 95% Student-t interval (none with one seed)."""
    mine = effects[effects["key"] == key]
    values = list(dict.fromkeys(mine["value"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = mine[mine["metric"] == metric]
        settings = list(dict.fromkeys(rows["setting"]))
        for j, (setting, g) in enumerate(rows.groupby("setting", sort=False)):
            nudge = 0.04 * (j - (len(settings) - 1) / 2)  # bars of two settings apart
            x = [values.index(v) + nudge for v in g["value"]]
            low = [0.0 if math.isnan(v) else m - v for m, v in zip(g["mean"], g["ci95_low"])]
            high = [0.0 if math.isnan(v) else v - m for m, v in zip(g["mean"], g["ci95_high"])]
            ax.errorbar(x, g["mean"], yerr=[low, high], marker="o", capsize=3, label=setting)
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(key)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{title}: mean and 95% CI over seeds per {key}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
