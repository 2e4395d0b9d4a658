"""The commands that read what studies recorded: `table`, `figures` (docs/tables.md) and
`predict` (docs/mlflow.md#the-best-model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fsvae_study.output import err


def register(sub) -> None:
    tb = sub.add_parser("table", help="Table 2 (and more) from a study's MLflow runs")
    study_arguments(tb)
    tb.add_argument(
        "--format",
        default="markdown",
        choices=("markdown", "latex", "csv"),
        help="markdown (default), latex (a booktabs float) or csv (tidy, one "
        "line per cell with its run ids)",
    )
    tb.add_argument("--out", help="write the table to this file instead of stdout")
    tb.add_argument(
        "--metric-set",
        default="test",
        choices=("test", "val"),
        help="which metrics the cells show (default test; a confirmation shows both)",
    )
    tb.add_argument(
        "--with-paper",
        action="store_true",
        help="add the paper's published numbers and our difference, and our "
        "split sizes beside the paper's",
    )
    tb.add_argument(
        "--compare", metavar="A:B", help="paired per-seed difference of method A minus method B"
    )
    tb.add_argument(
        "--acc-h",
        default="classes",
        choices=("classes", "samples"),
        help="acc_h from the mean of per-class accuracies in each group "
        "(classes, CADA-VAE's, default) or from the images of each group "
        "(samples: acc_h_samples)",
    )
    tb.set_defaults(func=_table)

    fg = sub.add_parser("figures", help="PNG figures from a study's MLflow runs")
    study_arguments(fg)
    fg.add_argument(
        "--out",
        metavar="DIR",
        help="write the PNGs to DIR/<experiment>/ "
        "(default: the study's folder, <storage>/<experiment>/figures/)",
    )
    fg.add_argument(
        "--metric-set",
        default="test",
        choices=("test", "val"),
        help="which metrics the figures plot against n_f (default test; a "
        "confirmation's show both)",
    )
    fg.add_argument(
        "--run",
        help="run id or trial name for the learning curves (default: "
        "the best trial by the validation objective; with several objectives, "
        "each trial of the Pareto front)",
    )
    fg.set_defaults(func=_figures)
    _predict_parser(sub)


def study_arguments(p: argparse.ArgumentParser) -> None:
    """--experiment and where its record is: the options of every command that reads one."""
    p.add_argument("--experiment", required=True, help="study name (MLflow experiment)")
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the sqlite file <storage>/mlflow.db)"
    )
    p.add_argument(
        "--storage",
        help="the studies' folder, as `run` was given it: the "
        "default MLflow store and each study's own folder <storage>/<experiment>/ "
        "are there (default ./fsvae-studies)",
    )
    p.add_argument(
        "--parent-run",
        metavar="RUN_ID",
        help="which study of the experiment "
        "to read, by its parent run's id, where a name ran more than once "
        "(default: the latest; a note names the others)",
    )


def _table(args: argparse.Namespace) -> int:
    """Prints (or writes to --out) the table, then the comparison lines. CSV keeps stdout
    machine-readable: its notes and summary lines go to stderr."""
    from results import load_table

    table = load_table(
        args.experiment,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        metric_set=args.metric_set,
        with_paper=args.with_paper,
        compare=args.compare,
        acc_h=args.acc_h,
        parent_run=args.parent_run,
    )
    text = table.render(args.format)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
        if args.format == "csv":
            print("\n".join(table.notes))
        if table.summaries:
            print("\n".join(table.summaries))
    else:
        sys.stdout.write(text)
        if args.format == "csv":
            print("\n".join(table.notes + table.summaries), file=sys.stderr)
    return 0


def _figures(args: argparse.Namespace) -> int:
    """Writes the PNGs (to --out/<experiment>, else the study's folder) and prints their
    paths; the notes on what was read go to stderr."""
    from results import load_study, store_uri
    from results.figures import curve_figures, metric_figures
    from results.store import study_folder

    study = load_study(args.experiment, store_uri(args.tracking_uri, args.storage), args.parent_run)
    out = (
        Path(args.out) / args.experiment
        if args.out
        else study_folder(args.experiment, args.storage) / "figures"
    )
    paths = metric_figures(study, args.metric_set, out)
    drawn = curve_figures(study, args.run, out)
    if not drawn:
        print(f"(no learning curves logged for the chosen run(s); {len(paths)} figures)")
    for p in paths + drawn:
        print(p)
    for note in study.notes:
        err(note)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fsvae.predict import image_files, predict_files
    from study.errors import StudyError
    from study.model.best import default_store, load_model

    paths = image_files(args.images)  # a bad folder fails before the model is loaded
    model = load_model(args.model, args.tracking_uri or default_store(args.storage))
    rows, skipped = predict_files(model, paths)
    for path, why in skipped:
        err(f"skipped {path}: {why}")
    for path, style, p in sorted(rows):
        print(f"{path}\t{style}\t{p:.4f}")
    if not rows:
        raise StudyError(f"no readable image under {args.images} ({len(paths)} files)")
    return 0


def _predict_parser(sub) -> None:
    pr = sub.add_parser(
        "predict",
        help="the style of every image in a folder, by a logged "
        "best model (docs/mlflow.md#the-best-model)",
    )
    pr.add_argument(
        "--model",
        required=True,
        metavar="RUN_OR_URI",
        help="a study's run id (its best model), runs:/RUN_ID/best_model or models:/NAME/VERSION",
    )
    pr.add_argument(
        "--images",
        required=True,
        metavar="DIR",
        help="every file under DIR; prints path, style, probability per image",
    )
    pr.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the sqlite file <storage>/mlflow.db)"
    )
    pr.add_argument("--storage", help="where the default store lives (default ./fsvae-studies)")
    pr.set_defaults(func=_predict)
