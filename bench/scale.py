"""The harness at scale: searches of 100 and 1,000 synthetic trials beside plain Ray Tune
running as many, and the record's read paths (`resume`, `table`, `analyze`) over a
finished 1,000-trial study and over a 10,000-trial study written directly to MLflow and
Optuna.

Usage, from the repository root with the project's Python:

    PYTHONPATH=$PWD python bench/scale.py                        # all parts, default sizes
    PYTHONPATH=$PWD python bench/scale.py --sizes 100 --parts harness,plain
    PYTHONPATH=$PWD python bench/scale.py --synthetic 10000 --parts synthetic,reads --keep

Parts (--parts, comma-separated; default all, in this order):
  harness    `fsvae-study run --space smoke-search --num-samples N --max-concurrent 2
             --set vae_epochs=1 --set classifier_epochs=1` with FSVAE_BENCH_TRIAL=instant
             (study/hooks/bench_trial.py: every trial a synthetic result of run_trial's shape, all
             of it recorded) at each of --sizes, after a 2-trial warm-up study that builds
             the stratum's shared backbone into the stage cache (so that the measured
             studies' prebuild, study/driver/prebuild.py, is a hit and does not compete for the
             CPU). The space's sampler is TPE, seeded. A random sampler would separate the
             harness's growth from TPE's, but the space schema offers `tpe` and `nsga2`
             only (search_spaces.SAMPLERS): `--sampler nsga2` runs a copy of the space with
             NSGA-II (whose ask grows less with the history than TPE's) instead.
  plain      plain Ray Tune at the same sizes, instant trials (they report at once), 2 at a
             time, 1 CPU each, reuse_actors=True: Tune's own variant generation over the
             same space, and Ray's OptunaSearch (TPE, in-memory storage) over it.
  resume     `fsvae-study resume` of the largest harness study, finished: all it does is
             reconcile the record (MLflow, Optuna) and find nothing to run.
  synthetic  writes a study of --synthetic trial runs: the parent run by study.identity.parent's
             own start_parent (with its plan, as `resume` reads it), each trial's run by its
             TrialRecorder (the format study/record/write.py documents: tags, params, dataset
             input, per-epoch curves, finals, FINISHED) fed by the synthetic trial's events
             and result, but without artifacts or figures; the matching Optuna study (one
             trial per run, COMPLETE with its objective, user attr mlflow_run_id, owned by
             the parent run) and study.json. Kept and reused with --keep when it exists
             with that size.
  reads      times `resume`, `table` and `analyze` over the synthetic study (`resume`
             above also times `table` and `analyze` over the largest harness study).
  lookups    in this process, at each study's size: a worker's get_run of a run its key
             already has, the search by key that trials made before main handed them their
             runs' ids (for comparison with the "before" figures), the driver's record.read
             (study/record/read.py), one Optuna ask + tell.

Per harness and plain run: the overhead per trial slot, defined as in bench/overhead.py
((last trial end - first trial start) x 2 / trials - mean compute; compute is 0 for an
instant trial), the same over each tenth of the trials (does a late trial cost more?),
the driver's CPU seconds per trial, peak RSS and private (anonymous) memory at exit.
Per read: wall time, the driver's CPU, peak RSS, and when each output line came.
Numbers go to <out>/scale.json. Runs take long on 2 shared cores (seen 2026-12-06 under
load: a 1,000-trial harness study 22 min, writing 10,000 synthetic runs 29 min, `resume` of
them 3 min, `analyze` 25 min): sizes and parts are options. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/'s modules, beside this file
from machine import Others, fmt_load, load, machine  # noqa: E402
from measure import HEADER, row  # noqa: E402
from plain_tune import plain  # noqa: E402
from studies import REPO, cli, forget, git_describe, harness, make_data, space_copy, warm_up  # noqa: E402
from synthetic_study import synthesize, synthetic_ready  # noqa: E402

sys.path.insert(0, str(REPO))
import search_spaces  # noqa: E402

PARTS = ("harness", "plain", "resume", "synthetic", "reads", "lookups")


def harness_space(out: Path, sampler: str) -> list[str]:
    """The --space argument (and nothing else) for the harness studies."""
    if sampler == "tpe":
        return []
    path = space_copy(out, seed=0)
    path.write_text(path.read_text() + f"sampler: {sampler}\n")
    return ["--space", str(path)]


def run_harness(out: Path, data: Path, n: int, slots: int, sampler: str) -> dict:
    name = f"scale-{n}"
    forget(out / "storage", name)
    # A second --space (a copy with another sampler) wins over studies.harness's own.
    r = harness(out, data, n, slots, "instant", name, extra=harness_space(out, sampler))
    r.pop("compute_list", None)
    return r


# -- reads -------------------------------------------------------------------------------


def timed(out: Path, label: str, args: list[str]) -> dict:
    before = load()
    others = Others()
    r = cli(args, out / f"{label}.log")
    before["others"] = others.share()
    print(f"  {label}: {r['wall_s']:.1f} s ({fmt_load(before)})", flush=True)
    return {
        "wall_s": r["wall_s"],
        "driver": r["driver"],
        "load": before,
        "lines": [ln for ln in r["lines"] if ln[1].strip()][:40],
    }


def reads(out: Path, storage: Path, name: str, analyze: bool = True) -> dict:
    res = {
        "resume": timed(
            out, f"resume-{name}", ["resume", "--name", name, "--storage", str(storage)]
        ),
        "table": timed(
            out, f"table-{name}", ["table", "--experiment", name, "--storage", str(storage)]
        ),
    }
    if analyze:
        res["analyze"] = timed(
            out,
            f"analyze-{name}",
            [
                "analyze",
                "--experiment",
                name,
                "--storage",
                str(storage),
                "--out",
                str(out / f"analysis-{name}"),
            ],
        )
    return res


# -- per-trial look-ups at each size ---------------------------------------------------------


def lookups(storage: Path, name: str, repeats: int = 5) -> dict:
    """What one more trial costs in look-ups at this study's size, in this process: a
    worker's get_run of a run its key already has (TrialRecorder.earlier, one per known
    run: none for a fresh trial, the runs a retry replaces otherwise), the search by key
    that trials made before they were handed their runs' ids (kept to compare with the
    "before" figures; no trial makes it now), the driver's record.read of the whole study
    (per session), and one Optuna ask (the space's suggestions) + tell with the study's
    sampler, on a copy of its Optuna database."""
    import statistics
    import tempfile

    import optuna
    from mlflow.tracking import MlflowClient

    from study.plan import plan as plan_mod
    from study.record import read as record
    from study.record.schema import PARENT, TRIAL_KEY
    from study.search.searcher import open_study, study_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan_mod.read(str(storage), name)
    if plan is None:
        raise RuntimeError(f"no study {name!r} under {storage}")
    exp, parent, optuna_url = plan.experiment_id, plan.parent_run_id, plan.optuna_storage
    if exp is None or parent is None or optuna_url is None:  # a search that has run has all
        raise RuntimeError(f"study {name!r}: no experiment, parent run or Optuna storage")
    client = MlflowClient(plan.tracking_uri)
    space = plan.search_space()
    label = ",".join(f"{k}={v}" for k, v in space.stratum_values()[0].items())

    def median_s(fn, n: int = repeats) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times), 4)

    entries: dict = {}

    def read() -> None:
        entries.update(record.read(client, exp, parent))

    out: dict[str, float | None] = {"record_read_s": median_s(read, n=1)}
    some_run = next(iter(entries.values())).run_id if entries else None
    out["get_run_s"] = median_s(lambda: client.get_run(some_run)) if some_run else None
    out["search_key_s"] = median_s(
        lambda: client.search_runs(
            [exp],
            filter_string=f"tags.`{PARENT}` = '{parent}' and tags.`{TRIAL_KEY}` = '{label}#999999'",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "optuna.db"
        shutil.copy(Path(optuna_url[len("sqlite:///") :]), db)
        study = open_study(
            f"sqlite:///{db}", study_name(name, label), space.sampler_seed, space.sampler
        )
        out["optuna_trials"] = len(study.get_trials(deepcopy=False))

        def ask_tell() -> None:
            trial = study.ask()
            search_spaces.suggest(trial, space.params)
            study.tell(trial.number, [0.5] * len(space.objectives))

        ask_tell()  # the first fills the storage's cache of finished trials
        out["optuna_ask_tell_s"] = median_s(ask_tell)
    return out


# -- the report ------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out",
        default="bench-out/scale",
        help="working folder (kept; each part replaces its own studies)",
    )
    p.add_argument("--sizes", default="100,1000", help="harness and plain sizes (default 100,1000)")
    p.add_argument(
        "--synthetic",
        type=int,
        default=10000,
        help="trial runs of the synthetic study (default 10000)",
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"of {','.join(PARTS)}")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument(
        "--sampler",
        default="tpe",
        choices=("tpe", "nsga2"),
        help="the harness studies' sampler (the space schema has no random one)",
    )
    p.add_argument(
        "--keep", action="store_true", help="reuse the synthetic study if it exists with that size"
    )
    a = p.parse_args()
    parts = [x for x in a.parts.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"scale: unknown part(s) {unknown}; expected some of {list(PARTS)}")
    sizes = [int(x) for x in a.sizes.split(",") if x]
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = out / "storage"
    data = make_data(out / "data", 40)
    commit = git_describe()
    print(
        f"scale bench: {machine()}; code {commit}; parts {parts}, sizes {sizes}, "
        f"synthetic {a.synthetic}, sampler {a.sampler}",
        flush=True,
    )
    report_path = out / "scale.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report.update({"machine": machine(), "commit": commit, "args": vars(a)})
    rows = report.setdefault("runs", {})

    def save() -> None:
        report_path.write_text(json.dumps(report, indent=1))

    if "harness" in parts and sizes:
        print("warm-up: building the shared backbone into the stage cache", flush=True)
        forget(storage, "warm-up")
        warm_up(out, data, a.slots, "instant")
    for n in sizes:
        if "harness" in parts:
            print(f"harness, {n} instant trials ...", flush=True)
            rows[f"harness-{n}"] = run_harness(out, data, n, a.slots, a.sampler)
            print(
                f"  {rows[f'harness-{n}']['overhead_s']:.3f} s per trial slot "
                f"({fmt_load(rows[f'harness-{n}']['load'])})",
                flush=True,
            )
            save()
        if "plain" in parts:
            for searcher, tag in (("none", "plain"), ("optuna", "plain+optuna")):
                print(f"{tag}, {n} instant trials ...", flush=True)
                rows[f"{tag}-{n}"] = plain(out, n, a.slots, 0.0, searcher, f"{tag}-{n}")
                print(
                    f"  {rows[f'{tag}-{n}']['overhead_s']:.3f} s per trial slot "
                    f"({fmt_load(rows[f'{tag}-{n}']['load'])})",
                    flush=True,
                )
                save()
    largest = f"scale-{max(sizes)}" if sizes else None
    if "resume" in parts and largest and (storage / largest / "study.json").is_file():
        print(f"resume of the finished {largest} ...", flush=True)
        report.setdefault("reads", {})[largest] = reads(out, storage, largest)
        save()
    synth = f"synthetic-{a.synthetic}"
    if "synthetic" in parts:
        if a.keep and synthetic_ready(storage, synth, a.synthetic):
            print(f"synthetic study {synth}: kept", flush=True)
        else:
            print(f"synthetic study {synth}: writing {a.synthetic} runs ...", flush=True)
            report["synthetic"] = synthesize(storage, data, synth, a.synthetic)
            print(f"  written in {report['synthetic']['write_s']:.0f} s", flush=True)
            save()
    if "reads" in parts and synthetic_ready(storage, synth, a.synthetic):
        print(f"reads over {synth} ...", flush=True)
        report.setdefault("reads", {})[synth] = reads(out, storage, synth)
        save()
    if "lookups" in parts:
        names = [f"scale-{n}" for n in sizes] + [synth]
        for name in names:
            if (storage / name / "study.json").is_file():
                print(f"look-ups at {name} ...", flush=True)
                report.setdefault("lookups", {})[name] = lookups(storage, name)
                save()
    print_report(report)
    print(f"\nfull numbers: {report_path}")


def print_report(report: dict) -> None:
    runs = report.get("runs", {})
    if runs:
        print(f"\n{HEADER}")
        for label, r in runs.items():
            print(row(label, r))
        print("\noverhead per tenth of the trials (s per trial slot):")
        for label, r in runs.items():
            print(f"  {label}: {r.get('deciles')}")
        sizes = sorted({int(k.rsplit('-', 1)[1]) for k in runs})
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            for tag in ("harness", "plain", "plain+optuna"):
                a, b = runs.get(f"{tag}-{lo}"), runs.get(f"{tag}-{hi}")
                if a and b:
                    marginal = (b["driver"]["cpu_s"] - a["driver"]["cpu_s"]) / (hi - lo)
                    print(
                        f"{tag}: {lo} -> {hi} trials: overhead {a['overhead_s']:.3f} -> "
                        f"{b['overhead_s']:.3f} s per slot; driver CPU {marginal:.3f} s per "
                        f"added trial; peak RSS {a['driver']['maxrss_mb']:.0f} -> "
                        f"{b['driver']['maxrss_mb']:.0f} MB, private at exit "
                        f"{a['driver'].get('RssAnon_mb', 0):.0f} -> "
                        f"{b['driver'].get('RssAnon_mb', 0):.0f} MB"
                    )
    if "synthetic" in report:
        s = report["synthetic"]
        print(
            f"\nsynthetic study: {s['runs']} runs written in {s['write_s']:.0f} s "
            f"({1000 * s['write_s'] / s['runs']:.0f} ms per run)"
        )
    if report.get("lookups"):
        print(
            "\nlook-ups by study size (median s): get_run of a known run (a retry's, per "
            "run it replaces), search by key (no trial makes it now), record.read (the "
            "driver's, per session), Optuna ask+tell:"
        )
        for study, r in report["lookups"].items():
            get_run = "-" if r.get("get_run_s") is None else f"{r['get_run_s']:.4f}"
            print(
                f"  {study}: get_run {get_run}, search {r['search_key_s']:.4f}, "
                f"record.read {r['record_read_s']:.2f}, ask+tell "
                f"{r['optuna_ask_tell_s']:.4f} "
                f"({r['optuna_trials']} Optuna trials)"
            )
    for study, res in report.get("reads", {}).items():
        print(f"\nreads over {study}:")
        for what, r in res.items():
            print(
                f"  {what}: {r['wall_s']:.1f} s, driver CPU {r['driver'].get('cpu_s', 0):.1f}"
                f" s, peak RSS {r['driver'].get('maxrss_mb', 0):.0f} MB "
                f"({fmt_load(r['load'])})"
            )


if __name__ == "__main__":
    main()
