"""The command that analyses a study that ran: `analyze` (docs/analysis.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fsvae_study.output import err
from fsvae_study.read import study_arguments


def register(sub) -> None:
    an = sub.add_parser(
        "analyze",
        help="a study's analysis (search: importance, best trials, "
        "Optuna's plots; grid: each key's effect over seeds) as PNGs and "
        "analysis.md, logged to its parent run",
    )
    study_arguments(an)
    an.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="the search's Optuna storage "
        "(default: the one its parent run records, else <storage>/optuna.db)",
    )
    an.add_argument(
        "--out",
        metavar="DIR",
        help="write analysis.md and the PNGs to "
        "DIR/<experiment>/ (default: the study's folder, "
        "<storage>/<experiment>/analysis/)",
    )
    an.add_argument("--top", type=int, default=5, help="best trials listed per stratum (default 5)")
    an.add_argument(
        "--log-best",
        action="store_true",
        help="also log the best trial's model to the parent run (docs/mlflow.md#the-best-model)",
    )
    an.add_argument(
        "--cache-dir",
        help="with --log-best: the stage cache the study used "
        "(default: the one its study.json names)",
    )
    an.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    """Writes the analysis, prints where, then logs the best model if asked."""
    from results import store_uri
    from results.analysis import analyze

    out = Path(args.out) / args.experiment if args.out else None
    analysis = analyze(
        args.experiment,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        optuna_storage=args.optuna_storage,
        out=out,
        top=args.top,
        parent_run=args.parent_run,
    )
    print(f"wrote {analysis.path} and {len(analysis.files) - 1} figures")
    for note in analysis.study.notes:
        err(note)
    if analysis.logged_to:
        print(f"logged to run {analysis.logged_to} under analysis/")
    else:
        print("not logged: the experiment has no parent run (fsvae.role=study)")
    if args.log_best:
        from study.model.best import log_best_of_experiment

        uri = log_best_of_experiment(
            store_uri(args.tracking_uri, args.storage),
            args.experiment,
            args.cache_dir,
            args.parent_run,
        )
        print(f"best model: {uri}")
    return 0
