"""The floor the stores set under the harness's cost per trial: one trial's record writes,
Optuna round trips and PNG figures, done one after another in this one process, with no
Ray, no other trial and no driver competing for the CPU.

Usage, from the repository root with the project's Python:

    PYTHONPATH=$PWD python bench/floor.py              # 60 trials
    PYTHONPATH=$PWD python bench/floor.py --trials 200

Per trial, on fresh SQLite stores in a temporary folder (the defaults of a local study):
  record    what a trial's worker writes (study/record/write.py TrialRecorder): its run with
            tags, params and dataset input, the per-epoch metrics a cached-backbone trial
            emits, its finals and timings, its output folder as artifacts, FINISHED; the
            trial is study/hooks/bench_trial.py's synthetic result, instant.
  optuna    what the driver asks and tells for it (study/search/mirror.py, seeded TPE over
            the smoke-search space): one ask with its write-through, one tell with the
            trial's run id.
  figures   its three PNGs drawn (study/figures/trial_png.py), then uploaded and its pending tag
            removed (study/figures/late.py), as the worker's drawing thread does.

Prints the median and mean milliseconds of each. bench/overhead.py measures the harness
whole beside plain Ray Tune; this says how much of it the stores and figures account for
before any contention. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402  (bench/'s modules, beside this file)
from studies import SPACE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    args = ap.parse_args()
    if args.trials < 1:
        ap.error(f"--trials {args.trials}: expected at least 1")

    import optuna
    from mlflow.tracking import MlflowClient

    import search_spaces
    from fsvae import config as config_mod
    from fsvae.trial import resolve
    from study.figures import late as late_figures
    from study.hooks.bench_trial import synthetic_trial
    from study.record import provenance, stores
    from study.record import write as records
    from study.search.mirror import Mirror
    from study.search.sync import RUN_ID

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = search_spaces.load(SPACE)
    tmp = Path(tempfile.mkdtemp(prefix="fsvae-floor-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    stores.ensure_mlflow_store(uri)
    client = MlflowClient(uri)
    exp_id = client.create_experiment("floor", artifact_location=str(tmp / "artifacts"))
    parent = client.create_run(exp_id, run_name="parent").info.run_id
    optuna_url = f"sqlite:///{tmp / 'optuna.db'}"
    stores.ensure_optuna_store(optuna_url)
    stored = optuna.create_study(
        storage=optuna_url,
        study_name="floor",
        sampler=optuna.samplers.TPESampler(seed=0),
        directions=["maximize"] * len(space.objectives),
    )
    mirror = Mirror(stored)
    dataset = provenance.dataset_input(str(tmp), "0" * 32, "trial")
    trial = synthetic_trial("instant")
    times: dict[str, list[float]] = {"record": [], "optuna": [], "figures": []}
    print(f"floor bench: {machine()}; {args.trials} trials", flush=True)
    for i in range(args.trials):
        t0 = time.perf_counter()
        asked, stored_id = mirror.ask(lambda t: search_spaces.suggest(t, space.params))
        t1 = time.perf_counter()
        stratum = space.stratum_values()[0] if space.stratum_values() else {}
        cfg = resolve(
            config_mod.resolve(
                {**space.fixed, **stratum, **asked.params, "data": str(tmp)}, preset=space.preset
            )
        )
        out = tmp / f"out{i}"
        rec = records.TrialRecorder(
            uri,
            exp_id,
            parent,
            f"#{asked.number}",
            f"trial {i}",
            tags={},
            dataset=dataset,
            known=[],
        )
        rec.start(config_mod.active_config(cfg))
        result = trial(cfg, progress=rec.progress, out_dir=out)
        rec.finish(result, out, figures_later=True)
        t2 = time.perf_counter()
        values = [result["metrics"][o] for o in space.objectives]
        mirror.tell(
            asked.number,
            stored_id,
            values if len(values) > 1 else values[0],
            user_attrs={RUN_ID: rec.run_id},
        )
        t3 = time.perf_counter()
        if rec.run_id is None:  # set by rec.start
            raise RuntimeError("the trial's run has no id")
        late_figures.draw_and_upload(client, rec.run_id, late_figures.figure_inputs(result))
        t4 = time.perf_counter()
        times["record"].append(t2 - t1)
        times["optuna"].append((t1 - t0) + (t3 - t2))
        times["figures"].append(t4 - t3)
    print("| per trial | median ms | mean ms |\n|---|---|---|")
    for part, values in times.items():
        print(
            f"| {part} | {1000 * statistics.median(values):.1f} | "
            f"{1000 * statistics.mean(values):.1f} |"
        )
    whole = [sum(v) for v in zip(*times.values())]
    print(f"| all | {1000 * statistics.median(whole):.1f} | {1000 * statistics.mean(whole):.1f} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
