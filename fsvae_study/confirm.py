"""The `confirm` command's flags (docs/analysis.md#confirming-the-winner): it calls
results.confirm_study, the Python API of the same."""

from __future__ import annotations

import argparse

from fsvae_study.studies import study_location, trial_resources
from study.plan.options import CONFIRM_SEEDS as DEFAULT_SEEDS
from study.plan.options import SEEDS_FORM


def register(sub) -> None:
    from fsvae_study.studies import EXIT_CODES

    c = sub.add_parser(
        "confirm",
        help="rerun an Optuna search's top configurations of each "
        "stratum with new seeds, as a grid study",
        epilog=EXIT_CODES,
    )
    c.add_argument("--experiment", required=True, help="the search (its study name)")
    c.add_argument(
        "--top",
        type=int,
        default=3,
        metavar="K",
        help="configurations per stratum, best first by the search's validation "
        "objective (default 3)",
    )
    c.add_argument(
        "--seeds",
        metavar="SPEC",
        help=f"{SEEDS_FORM} (default: the {DEFAULT_SEEDS} after the largest seed the search used)",
    )
    study_location(c, name="the confirmation's study name (default: <search>-confirm)")
    trial_resources(c, inherit="the search")
    c.add_argument(
        "--resume", action="store_true", help="continue the confirmation of this name if it exists"
    )
    c.set_defaults(func=_confirm)


def _confirm(args: argparse.Namespace) -> int:
    from fsvae_study.studies import told
    from results.confirm_study import confirm_study
    from study.plan.options import INHERITED

    result = confirm_study(
        args.experiment,
        top_k=args.top,
        seeds=args.seeds,
        name=args.name,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        resume=args.resume,
        address=args.address,
        **{k: getattr(args, k) for k in INHERITED},
    )
    return told(result, "confirm")
