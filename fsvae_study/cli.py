"""`fsvae-study`: the command line. Each command imports what it needs, so `trial` and
`demo-data` start without Ray, Optuna or MLflow.

Errors a user can fix (bad config key or value, bad search space, bad data) print one
clear line on stderr and exit with status 2; nothing already written is removed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


def _trial(args: argparse.Namespace) -> int:
    from fsvae import config as config_mod
    from fsvae.cache import StageCache
    from fsvae.trial import run_trial

    overrides = config_mod.parse_overrides(args.set or [])
    overrides["data"] = str(Path(args.data).resolve())
    cfg = config_mod.resolve(overrides, preset=args.preset)
    out = Path(args.out or f"runs/trial-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    cache = StageCache(args.cache_dir, log=_err) if args.cache_dir else None

    def progress(event: dict) -> None:
        if event.get("stage") in ("backbone", "vae", "classifier") and "epoch" in event:
            shown = {k: (round(v, 4) if isinstance(v, float) else v)
                     for k, v in event.items() if k not in ("stage", "seconds")}
            tag = " (cached)" if event.get("replayed") else ""
            shown.pop("replayed", None)
            _err(f"{event['stage']}{tag}: " + " ".join(f"{k}={v}" for k, v in shown.items()))
        elif event.get("stage") == "cache" and args.cache_dir:
            _err(f"cache: {event['name']} {event['key'][:12]} "
                 f"{'hit' if event['hit'] else 'miss'}")

    result = run_trial(cfg, progress=progress, out_dir=out, cache=cache, log=_err)
    _err(f"outputs: {out}")
    # The last line of stdout is the metrics, as one JSON object.
    print(json.dumps(result["metrics"], sort_keys=True))
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from fsvae import demo_data
    from study.errors import StudyError

    try:
        info = demo_data.make(args.dir, per_class=args.per_class, image_size=args.image_size,
                              seed=args.seed, defects=args.defects)
    except ValueError as e:  # out-of-range --per-class / --image-size
        raise StudyError(str(e)) from None
    print(f"wrote {sum(info['listed'].values())} listed files ({info['listed']}) in "
          f"FashionStyle14 layout under {Path(args.dir).resolve()}"
          + (f"; {len(info['defects'])} deliberate defects" if info["defects"] else ""))
    return 0


def _run(args: argparse.Namespace) -> int:
    from study.run import run_from_args

    return run_from_args(args)


def _resume(args: argparse.Namespace) -> int:
    from study.run import resume_from_args

    return resume_from_args(args)


def _table(args: argparse.Namespace) -> int:
    """Prints (or writes to --out) the table, then the comparison lines. CSV keeps stdout
    machine-readable: its notes and summary lines go to stderr."""
    from results import load_table

    table = load_table(args.experiment, tracking_uri=args.tracking_uri, storage=args.storage,
                       metric_set=args.metric_set, with_paper=args.with_paper,
                       compare=args.compare, acc_h=args.acc_h)
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
    """Writes the PNGs under --out and prints their paths."""
    from results import load_study, store_uri
    from results.figures import curve_figure, metric_figures

    study = load_study(args.experiment, store_uri(args.tracking_uri, args.storage))
    out = Path(args.out)
    paths = metric_figures(study, args.metric_set, out)
    curve = curve_figure(study, args.run, out)
    if curve is None:
        print(f"(no learning curves logged for the chosen run; {len(paths)} figures)")
    else:
        paths.append(curve)
    for p in paths:
        print(p)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fsvae.predict import image_files, predict_files
    from study.errors import StudyError
    from study.model_log import default_store, load_model

    paths = image_files(args.images)  # a bad folder fails before the model is loaded
    model = load_model(args.model, args.tracking_uri or default_store(args.storage))
    rows, skipped = predict_files(model, paths)
    for path, why in skipped:
        _err(f"skipped {path}: {why}")
    for path, style, p in sorted(rows):
        print(f"{path}\t{style}\t{p:.4f}")
    if not rows:
        raise StudyError(f"no readable image under {args.images} ({len(paths)} files)")
    return 0


def _predict_parser(sub) -> None:
    pr = sub.add_parser("predict", help="the style of every image in a folder, by a logged "
                        "best model (README: The best model)")
    pr.add_argument("--model", required=True, metavar="RUN_OR_URI",
                    help="a study's run id (its best model), runs:/RUN_ID/best_model or "
                    "models:/NAME/VERSION")
    pr.add_argument("--images", required=True, metavar="DIR",
                    help="every file under DIR; prints path, style, probability per image")
    pr.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local "
                    "studies' store, ./fsvae-studies/mlflow.db)")
    pr.add_argument("--storage", help="where the default store lives (default ./fsvae-studies)")
    pr.set_defaults(func=_predict)


def _cache(args: argparse.Namespace) -> int:
    from fsvae import cache as cache_mod
    from study.errors import StudyError

    if args.cache_dir and args.storage:
        raise StudyError("--cache-dir and --storage both name the cache; give one")
    root = Path(args.cache_dir or Path(args.storage or "fsvae-studies") / "cache").resolve()
    if not root.is_dir():
        raise StudyError(f"no stage cache at {root} (a study's cache is <storage>/cache, or "
                         f"its --cache-dir)")
    for prefix in args.remove or []:
        try:
            entry = cache_mod.remove(root, prefix)
        except (ValueError, TimeoutError) as e:
            raise StudyError(str(e)) from None
        print(f"removed {entry['stage']} {entry['key']} ({_size(entry['bytes'])})")
    if args.remove:
        return 0
    order = {"data": 0, "backbone": 1, "vae": 2}  # pipeline order, then by date
    rows = sorted(cache_mod.entries(root),
                  key=lambda e: (order.get(e["stage"], 3), e["stage"], e["created"]))
    total = sum(e["bytes"] for e in rows)
    print(f"stage cache {root}: {sum(e['state'] == 'complete' for e in rows)} entries, "
          f"{_size(total)}")
    if not rows:
        return 0
    print("\n| stage | key | size | created | build s | what |\n|---|---|---|---|---|---|")
    for e in rows:
        key = e["key"][:12] + (" (unfinished build)" if e["state"] == "building" else "")
        built = f"{e['build_s']:.1f}" if e["build_s"] is not None else ""
        print(f"| {e['stage']} | {key} | {_size(e['bytes'])} | "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e['created']))} | {built} | "
              f"{_what(e['stage'], e['parts'])} |")
    print("\nRemove an entry with `fsvae-study cache --remove KEY` (a unique prefix will do); "
          "a trial that needs it again rebuilds it.")
    return 0


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"


def _what(stage: str, parts: dict) -> str:
    """The config values that tell one entry from another, shortly."""
    if stage == "data":
        return f"load_size={parts.get('load_size')}"
    if stage == "backbone":
        split, bb = parts.get("split", {}), parts.get("backbone", {})
        shown = [f"{k}={split[k]}" for k in ("n_f", "num_minority", "seed") if k in split]
        shown += [f"{k}={bb[k]}" for k in ("backbone", "backbone_weights", "backbone_epochs",
                                          "image_size") if k in bb]
        if parts.get("oversample", 1) != 1:
            shown.append(f"oversample x{parts['oversample']}")
        return " ".join(shown)
    if stage == "vae":
        from fsvae.config import short

        v = parts.get("vae", {})
        shown = [f"{k}={short(v[k])}" for k in ("latent_dim", "beta_schedule", "beta_max",
                                                 "vae_epochs") if k in v]
        return " ".join(shown + [f"on backbone {str(parts.get('backbone', ''))[:12]}"])
    return ""


def _keys(args: argparse.Namespace) -> int:
    from fsvae import config as config_mod

    print(config_mod.describe())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsvae-study", description="Park (2021) VAE-for-imbalance studies: trials, Ray Tune + Optuna searches, MLflow records, tables.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo-data", help="write a synthetic dataset in FashionStyle14 layout")
    d.add_argument("dir")
    d.add_argument("--per-class", type=int, default=40, help="images per class (default 40)")
    d.add_argument("--image-size", type=int, default=48, help="image width in px (default 48)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--defects", action="store_true",
                   help="add one file of every defect kind the reader reports")
    d.set_defaults(func=_demo_data)

    t = sub.add_parser("trial", help="run one trial without Ray; metrics JSON on stdout")
    t.add_argument("--data", required=True, help="dataset root")
    t.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (repeatable); see `fsvae-study keys`")
    t.add_argument("--out", help="output folder (default runs/trial-<time>)")
    t.add_argument("--cache-dir", help="reuse/build stage outputs here (default: no cache)")
    t.set_defaults(func=_trial)

    c = sub.add_parser("cache", help="list the stage cache's entries (size, what they hold), "
                       "or remove some")
    c.add_argument("--storage", help="studies' storage; the cache is <storage>/cache "
                   "(default ./fsvae-studies)")
    c.add_argument("--cache-dir", help="a cache elsewhere (a study's --cache-dir)")
    c.add_argument("--remove", nargs="+", metavar="KEY",
                   help="delete these entries (a unique key prefix is enough)")
    c.set_defaults(func=_cache)

    k = sub.add_parser("keys", help="print every config key with its default and meaning")
    k.set_defaults(func=_keys)

    r = sub.add_parser("run", help="run a study (grid or Optuna search) with Ray Tune")
    r.add_argument("--space", required=True, help="search space YAML (see search_spaces/)")
    r.add_argument("--data", required=True, help="dataset root")
    _study_location(r)
    r.add_argument("--num-samples", type=int,
                   help="Optuna: trials per stratum (overrides the space's num_samples)")
    r.add_argument("--preset", choices=("paper", "tiny"),
                   help="config preset under the space's values (default: the space's)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="fix a config key for every trial, wherever the space varied it "
                   "(repeatable)")
    r.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="grid spaces: replace (or add) one grid dimension, e.g. "
                   "--grid seed=0,1,2 (repeatable)")
    r.add_argument("--address", help="join an existing Ray cluster (default: RAY_ADDRESS, "
                   "else start a local Ray)")
    r.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
    r.add_argument("--gpus-per-trial", type=float,
                   help="GPU fraction per trial (default: 0.25 where the cluster has GPUs)")
    r.add_argument("--max-concurrent", type=int,
                   help="trials at once (default: as many as the resources allow)")
    r.add_argument("--max-failures", type=int, default=0,
                   help="retries of any failing trial, its own errors included, before it "
                   "counts as failed (default 0)")
    r.add_argument("--infra-retries", type=int, default=2,
                   help="retries of a trial whose worker process or node died, or that "
                   "could not reach MLflow (default 2)")
    r.add_argument("--asha", action="store_true",
                   help="early-stop weak trials with ASHA (stage-3 epochs as time)")
    r.add_argument("--optuna-storage", metavar="URL",
                   help="Optuna searches: the database of their Optuna studies (default: "
                   "sqlite <storage>/optuna.db; with an s3:// storage, a file on this "
                   "machine's disk)")
    r.add_argument("--cache-dir", help="stage cache (default: <storage>/cache)")
    r.add_argument("--no-cache", action="store_true", help="compute every stage in every trial")
    r.add_argument("--resume", action="store_true",
                   help="continue the study of this name if it exists")
    r.add_argument("--log-model", action="store_true",
                   help="when the study is complete, log the best trial's model to its parent "
                   "run (README: The best model)")
    r.set_defaults(func=_run)

    rs = sub.add_parser("resume", help="continue an interrupted study")
    rs.add_argument("--name", required=True)
    rs.add_argument("--storage", help="study storage (default ./fsvae-studies)")
    rs.add_argument("--address", help="Ray cluster address (default: as the study ran)")
    rs.add_argument("--retry-failed", action="store_true",
                    help="also re-run trials that failed (a search retries each failed "
                    "trial's parameters as a new Optuna trial)")
    rs.set_defaults(func=_resume)

    tb = sub.add_parser("table", help="Table 2 (and more) from a study's MLflow runs")
    tb.add_argument("--experiment", required=True, help="study name (MLflow experiment)")
    tb.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local "
                    "studies' store, ./fsvae-studies/mlflow.db)")
    tb.add_argument("--storage", help="where the default store lives (default ./fsvae-studies)")
    tb.add_argument("--format", default="markdown", choices=("markdown", "latex", "csv"))
    tb.add_argument("--out", help="write the table here instead of stdout")
    tb.add_argument("--metric-set", default="test", choices=("test", "val"))
    tb.add_argument("--with-paper", action="store_true",
                    help="add the paper's published numbers and our difference, and our "
                    "split sizes beside the paper's")
    tb.add_argument("--compare", metavar="A:B",
                    help="paired per-seed difference of method A minus method B")
    tb.add_argument("--acc-h", default="classes", choices=("classes", "samples"),
                    help="acc_h from the mean of per-class accuracies in each group "
                    "(classes, CADA-VAE's, default) or from the images of each group "
                    "(samples: acc_h_samples)")
    tb.set_defaults(func=_table)

    fg = sub.add_parser("figures", help="PNG figures from a study's MLflow runs")
    fg.add_argument("--experiment", required=True)
    fg.add_argument("--tracking-uri")
    fg.add_argument("--storage")
    fg.add_argument("--out", default="figures", help="folder for the PNGs (default figures/)")
    fg.add_argument("--metric-set", default="test", choices=("test", "val"))
    fg.add_argument("--run", help="run id or trial name for the learning curves "
                    "(default: the best run by the validation objective)")
    fg.set_defaults(func=_figures)
    _predict_parser(sub)
    return p


def _study_location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="study name (default: the space's name)")
    p.add_argument("--storage", help="Ray results, cache and default MLflow store: a local "
                   "folder (default ./fsvae-studies) or a shared path on a cluster")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite file "
                   "<storage>/mlflow.db; http://host:port for a server)")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rc = _main(args)
    if argv is None and args.command in ("run", "resume"):
        _exit_now(rc)
    return rc


def _exit_now(rc: int) -> None:
    """Ends a study's process without the interpreter's teardown. After a study, the
    work is done and saved (MLflow writes are synchronous, Ray is shut down), but tearing
    down Ray's native client library takes about 2 s of a 2-core machine's time. atexit
    handlers still run, other threads are waited for as at a normal exit, and the output
    is flushed first."""
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe
            pass
    os._exit(rc)


def _main(args: argparse.Namespace) -> int:
    from fsvae import errors
    from search_spaces import SpaceError
    from study.errors import StudyError

    user_errors = (errors.ConfigError, errors.DataError, errors.SplitError, errors.TrialError,
                   errors.BackboneError, StudyError, SpaceError, FileExistsError,
                   FileNotFoundError)
    try:
        return args.func(args)
    except user_errors as e:
        _err(f"fsvae-study {args.command}: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err(f"fsvae-study {args.command}: interrupted")
        return 130
    except BrokenPipeError:  # e.g. `fsvae-study keys | head`
        return 0


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
