"""`fsvae-study analyze`: a study's analysis as one markdown page, analysis.md, beside its
PNGs, logged to the study's parent MLflow run under analysis/ (docs/analysis.md).

A search: per stratum, results.search_analysis (importance, best trials or Pareto front,
Optuna's plots). A grid: results.grid_effects (each varied key's effect over seeds) and a
figure per key. By default the files go to the study's folder,
<storage>/<experiment>/analysis/. From Python:

    from results.analysis import analyze
    analysis = analyze("search-nf", storage="fsvae-studies")
    print(analysis.markdown)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from results.errors import ResultsError
from results.grid_effects import effect_figure, grid_effects
from results.importance import ALL, MIN_TRIALS, Importance
from results.markdown import pipe_table
from results.search_analysis import StratumAnalysis, analyze_stratum, open_strata, storage_url
from results.store import Study, load_study, store_uri, study_folder
from results.table import METRICS
from results.table_model import num, objective_text
from study.secrets import redact

ARTIFACT_DIR = "analysis"
VAL = ("val_acc_h", "val_acc")
TEST = ("test_acc_h", "test_acc", "test_acc_majority", "test_acc_minority")
FANOVA = (
    "Optuna's FanovaImportanceEvaluator (fANOVA: Hutter, Hoos and Leyton-Brown, ICML "
    "2014), seeded: each parameter's share of the variance that parameters explain on "
    "their own (main effects), over the stratum's complete trials, summing to 1. "
    f"Below {MIN_TRIALS} complete trials it is not computed: the ranking would be "
    "mostly chance (results/importance.py says how that floor was measured)."
)


@dataclass
class Analysis:
    study: Study
    out: Path
    top: int = 5
    metric_set: str = "test"  # grids: the metrics whose effects are shown
    optuna_url: str | None = None
    strata: list[StratumAnalysis] = field(default_factory=list)
    effects: pd.DataFrame | None = None
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: str = ""
    logged_to: str | None = None  # the parent run the files were logged to

    @property
    def path(self) -> Path:
        return self.out / "analysis.md"

    @property
    def files(self) -> list[Path]:
        """Everything written, analysis.md first."""
        return [self.path] + self.figures + [f for s in self.strata for f in s.files]


def analyze(
    experiment: str,
    tracking_uri: str | None = None,
    storage: str | Path | None = None,
    optuna_storage: str | None = None,
    out: str | Path | None = None,
    top: int = 5,
    log: bool = True,
    parent_run: str | None = None,
) -> Analysis:
    """Analyses the study (the experiment's latest parent run, or `parent_run`), writes
    analysis.md and its PNGs under `out` (default the study's folder:
    <storage>/<experiment>/analysis) and, with `log`, logs them to its parent run.
    ResultsError names a bad option, a missing store, experiment, parent run or Optuna
    storage."""
    if top < 1:
        raise ResultsError(f"top={top}: expected at least 1 trial to list")
    study = load_study(experiment, store_uri(tracking_uri, storage), parent_run)
    folder = Path(out) if out else study_folder(experiment, storage) / ARTIFACT_DIR
    analysis = Analysis(study=study, out=folder, top=top, notes=list(study.notes))
    analysis.out.mkdir(parents=True, exist_ok=True)
    if study.kind == "optuna":
        _search(analysis, storage_url(study, optuna_storage, storage))
    else:
        _grid(analysis)
    analysis.markdown = render(analysis)
    analysis.path.write_text(analysis.markdown, encoding="utf-8")
    if log:
        log_to_parent(analysis)
    return analysis


def _search(analysis: Analysis, url: str) -> None:
    study = analysis.study
    analysis.optuna_url = url
    if study.space_params is None:
        analysis.notes.append(
            "The parent run has no space.json: per-branch importance "
            "needs the space's `when` clauses, so none is shown."
        )
    for label, ost in open_strata(study, url).items():
        analysis.strata.append(
            analyze_stratum(study, label, ost, study.space_params or {}, analysis.top, analysis.out)
        )


def _grid(analysis: Analysis) -> None:
    effects, notes = grid_effects(analysis.study, analysis.metric_set, METRICS)
    analysis.effects, analysis.notes = effects, analysis.notes + notes
    for key in dict.fromkeys(effects["key"]) if not effects.empty else []:
        analysis.figures.append(
            effect_figure(
                effects, key, METRICS, analysis.out / f"effect_{key}.png", analysis.study.name
            )
        )


def log_to_parent(analysis: Analysis) -> None:
    """Logs the files written (not the rest of the folder) under analysis/ of the study's
    parent run; a study with no parent run keeps them on disk only (logged_to stays None)."""
    parent = analysis.study.parent_run_id
    if parent is None:
        return
    client = MlflowClient(analysis.study.tracking_uri)
    for path in analysis.files:
        client.log_artifact(parent, str(path), ARTIFACT_DIR)
    analysis.logged_to = parent


# -- analysis.md ------------------------------------------------------------------------------


def render(analysis: Analysis) -> str:
    study = analysis.study
    kind = "Optuna search" if study.kind == "optuna" else "grid study"
    lines = [f"# Analysis: {study.name} ({kind})", ""]
    if study.kind == "optuna":
        goals = ", ".join(f"{o} ({m})" for o, m in zip(study.objectives, study.modes))
        lines += [
            f"Validation objective{'s' * (len(study.objectives) > 1)}: {goals}; "
            f"test metrics are shown beside, never used to rank. Accuracies in "
            f"percent. MLflow: {redact(study.tracking_uri)}; Optuna: "
            f"{redact(analysis.optuna_url)}.",
            "",
        ]
        for stratum in analysis.strata:
            lines += _stratum_section(stratum, analysis.top)
    else:
        lines += _grid_section(analysis)
    if analysis.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A pipe table and the blank line after it; `align`: l or r per column."""
    return pipe_table(header, rows, align) + [""]


def _figure(path, alt: str) -> str:
    return f"![{alt}]({path.name})"


# -- a search stratum ----------------------------------------------------------------------


def _stratum_section(s: StratumAnalysis, top: int) -> list[str]:
    counts = s.counts
    total = sum(counts.values())
    other = total - sum(counts.get(k, 0) for k in ("COMPLETE", "FAIL", "PRUNED"))
    lines = [
        f"## {s.title}",
        "",
        f"Trials: {counts.get('COMPLETE', 0)} complete, {counts.get('FAIL', 0)} failed, "
        f"{counts.get('PRUNED', 0)} stopped early (pruned), "
        + (f"{other} still running or waiting, " if other else "")
        + f"of {total}.",
        "",
    ]
    lines += _importance(s) + _branches(s) + _best(s, top)
    if s.figures:
        lines += ["### Plots", ""] + [_figure(f, f.stem) for f in s.figures] + [""]
    return lines + [f"- {n}" for n in s.notes] + ([""] if s.notes else [])


def _importance(s: StratumAnalysis) -> list[str]:
    lines = ["### Hyperparameter importance", "", FANOVA, ""]
    computed = [imp for imp in s.importances if imp.values]
    lines += [f"- {imp.objective}: {imp.reason}." for imp in s.importances if not imp.values]
    if len(computed) < len(s.importances):
        lines.append("")
    if computed:
        lines += _table(
            ["parameter"] + [imp.objective for imp in computed],
            [[p] + [num(imp.values.get(p)) for imp in computed] for p in computed[0].values],
            "l" + "r" * len(computed),
        )
        for imp in computed:
            if imp.explained is None:  # set with the values (results.importance)
                raise ValueError(f"importance of {imp.objective}: values without their share")
            lines.append(
                f"Main effects explain {imp.explained * 100:.0f}% of the forest's variance "
                f"of {imp.objective} ({imp.n_trials} trials); the rest is interactions "
                f"and noise."
            )
        lines.append("")
    left_out = s.importances[0].left_out if s.importances else []
    if left_out:
        lines += [
            f"Not assessed over all trials (conditional, not in every trial): "
            f"{', '.join(left_out)}; see the branches below.",
            "",
        ]
    return lines + _figures(s.importance_figures.get(ALL, []))


def _figures(paths: list) -> list[str]:
    return [_figure(f, f.stem) for f in paths] + ([""] if paths else [])


def _branches(s: StratumAnalysis) -> list[str]:
    """Per parent: a table (rows = parameters, columns = branch and objective), then why
    any branch has no importances, then the branches' importance plots."""
    lines = []
    for parent in dict.fromkeys(b.parent for b in s.branches):
        mine = [b for b in s.branches if b.parent == parent]
        cols = [imp for b in mine for imp in b.importances if imp.values]
        lines += [
            f"### Importance per branch of {parent}",
            "",
            f"Each value of {parent} over its own complete trials, with its own "
            f"parameters ({parent} itself is constant there).",
            "",
        ]
        if cols:
            params = list(dict.fromkeys(p for imp in cols for p in imp.values))
            header = ["parameter"] + [_column(imp, len(s.objectives)) for imp in cols]
            lines += _table(
                header,
                [[p] + [num(imp.values.get(p)) for imp in cols] for p in params],
                "l" + "r" * len(cols),
            )
        skipped = [_skipped(b) for b in mine if not all(i.values for i in b.importances)]
        lines += skipped + ([""] if skipped else [])
        lines += _figures(
            [f for b in mine for f in s.importance_figures.get(f"{parent}={b.value}", [])]
        )
    return lines


def _column(imp: Importance, n_objectives: int) -> str:
    head = f"{imp.scope} ({imp.n_trials} trials)"
    return f"{head} {imp.objective}" if n_objectives > 1 else head


def _skipped(branch) -> str:
    """'- beta_schedule=sigmoid: 5 complete trials, fewer than 20: ...' (the reasons of
    each objective, once when they agree)."""
    reasons = dict.fromkeys(f"{i.reason}" for i in branch.importances if not i.values)
    return f"- {branch.parent}={branch.value}: {'; '.join(reasons)}."


def _best(s: StratumAnalysis, top: int) -> list[str]:
    """The best `top` trials, or the Pareto front, with validation and test metrics."""
    many = len(s.objectives) > 1
    if many:
        head = [
            f"### Pareto front on {', '.join(s.objectives)}",
            "",
            "The complete trials no other complete trial equals or beats on every "
            "validation objective while beating on one (Optuna's `Study.best_trials`), "
            f"best first by {s.objectives[0]}; test metrics beside, from each trial's "
            "MLflow run.",
            "",
        ]
    else:
        shown = len(s.ranked) or top  # fewer complete trials than --top: say how many
        head = [
            f"### Best {shown} trial{'s' * (shown != 1)} by {s.objectives[0]}",
            "",
            f"Ranked by the validation objective ({s.modes[0]}); validation and test "
            f"metrics from each trial's MLflow run.",
            "",
        ]
    if s.ranked.empty:
        return head + ["No complete trial.", ""]
    cols = list(s.objectives) + [c for c in VAL if c not in s.objectives] + list(TEST)
    rows = [
        [str(i + 1), str(r["trial_key"]), _run(r)]
        + [objective_text(c, _get(r, c)) for c in cols]
        + [_params(r["params"])]
        for i, (_, r) in enumerate(s.ranked.iterrows())
    ]
    lines = head + _table(
        ["rank", "trial", "MLflow run", *cols, "params"], rows, "rll" + "r" * len(cols) + "l"
    )
    return lines


def _run(r: pd.Series) -> str:
    if not isinstance(r.get("run_id"), str):
        return "(no MLflow run)"
    return f"{r['run_name']} ({r['run_id'][:8]})"


def _get(r: pd.Series, column: str) -> float | None:
    v = r.get(column)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _params(params: dict) -> str:
    return "; ".join(f"{k}={_short(v)}" for k, v in sorted(params.items()))


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# -- a grid study --------------------------------------------------------------------------


def _grid_section(analysis: Analysis) -> list[str]:
    effects = analysis.effects
    lines = [
        f"{analysis.metric_set.capitalize()} metrics in percent. For each key the grid "
        f"varied, at each setting of the other keys: per value, the mean over seeds "
        f"with its 95% Student-t interval and n (seeds); and the paired difference "
        f"from the key's first value over the seeds both ran: mean [95% CI] (n). No "
        f"interval with one seed.",
        "",
    ]
    if effects is None or effects.empty:
        return lines + ["No key has two values run at one setting of the others.", ""]
    for key in dict.fromkeys(effects["key"]):
        mine = effects[effects["key"] == key]
        metrics = list(dict.fromkeys(mine["metric"]))
        ref = mine["reference"].iloc[0]
        header = ["setting", key]
        for m in metrics:
            header += [f"{m} mean [95% CI] (n)", f"{m} minus {key}={ref} [95% CI] (n)"]
        rows = []
        for (setting, value), g in mine.groupby(["setting", "value"], sort=False):
            g = g.set_index("metric")
            row = [setting, value]
            for m in metrics:
                row += [
                    _interval(
                        g.loc[m, "mean"], g.loc[m, "ci95_low"], g.loc[m, "ci95_high"], g.loc[m, "n"]
                    ),
                    _interval(
                        g.loc[m].get("diff_mean"),
                        g.loc[m].get("diff_low"),
                        g.loc[m].get("diff_high"),
                        g.loc[m].get("diff_n"),
                        signed=True,
                    ),
                ]
            rows.append(row)
        lines += [f"## {key}", ""] + _table(header, rows, "ll" + "r" * 2 * len(metrics))
        lines += [_figure(f, f.stem) for f in analysis.figures if f.stem == f"effect_{key}"]
        lines += [""]
    return lines


def _interval(mean, low, high, n, signed: bool = False) -> str:
    """'+4.00 [1.10, 6.90] (n=3)'; one seed: '+4.00 (n=1)'; nothing: ''."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = num(float(mean), signed=signed)
    if not (isinstance(low, float) and math.isnan(low)):
        text += f" [{num(float(low))}, {num(float(high))}]"
    return f"{text} (n={int(n)})"
