"""The shape of a study's record: what a study wrote to MLflow (and, for a search, to its
Optuna store), less what changes from run to run on its own (times, ids, pids, hosts,
library versions, the checkout's commit, metric values, the temp folder's path).

A change that is meant to leave the record alone (fewer round trips, batched writes,
figures written later) must leave this shape equal: same runs, same params with the same
values, same metric keys with the same steps, same tags, same dataset inputs, same
artifact paths, same Optuna trials.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from helpers.processes import REPO

# Tags whose values differ between two runs of the same study: they are kept by name only.
VOLATILE_TAGS = {
    "mlflow.source.git.commit",  # the checkout's commit
    "fsvae.git_dirty",  # whether the checkout had changes
    "fsvae.code_version",  # version + git describe
    "fsvae.trial_id",  # Ray Tune's id of the attempt (random)
    "fsvae.driver",  # host, pid, start time of the driver
    "fsvae.heartbeat",  # a Unix time
    "fsvae.node",  # the host a trial ran on
    "fsvae.progress",  # a trial's last progress: its values and a Unix time
    "fsvae.data_fingerprint",  # hashes the data files' times, which the test writes anew
    "mlflow.user",  # whoever runs the tests
    "mlflow.source.name",  # the interpreter's path
    "mlflow.source.type",
}
VOLATILE_TAG_PREFIXES = ("fsvae.version.",)  # library versions
# cache.<stage>.key (and the parent's cache.backbone.prebuild.<stratum>.key) hash the data
# fingerprint. Which of two trials started together builds a shared stage (cache.<stage>=
# miss) and which waits for it (hit) is a race: the study's count of hits and misses per
# stage is kept instead (cache_counts).
CACHE_KEY = re.compile(r"^cache\..*\.key$")
CACHE_STAGE = re.compile(r"^cache\.([a-z]+)$")


def record_shape(uri: str, experiment: str, tmp: Path, optuna_storage: str | None = None) -> dict:
    """{"runs": {run label: run shape}, "optuna": {study name: trials}} of `experiment` in
    the store at `uri`; `tmp` (the test's folder, which holds data and storage) is written
    `<tmp>` wherever a value holds it."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} at {uri}"
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000)
    parents = [r.info.run_id for r in runs if r.data.tags.get("fsvae.role") == "study"]
    ids = {pid: "<parent>" for pid in parents}
    out: dict = {}
    for run in runs:
        role = run.data.tags.get("fsvae.role", "?")
        label = (
            "parent" if role == "study" else f"trial {run.data.tags.get('fsvae.trial_key', '?')}"
        )
        if label in out:  # two runs of one key: keep both, visibly
            label += f" ({len([k for k in out if k.startswith(label)])})"
        out[label] = run_shape(client, run, tmp, ids)
    shape = {"runs": dict(sorted(out.items())), "cache_counts": cache_counts(runs)}
    if optuna_storage is not None:
        shape["optuna"] = optuna_shape(optuna_storage)
    return shape


def _clean(value: str, tmp: Path, ids: dict[str, str]) -> str:
    value = value.replace(str(tmp.resolve()), "<tmp>").replace(str(tmp), "<tmp>")
    value = value.replace(str(REPO), "<repo>")
    for run_id, name in ids.items():
        value = value.replace(run_id, name)
    return value


def run_shape(client: MlflowClient, run, tmp: Path, ids: dict[str, str]) -> dict:
    run_id = run.info.run_id
    tags = {}
    for k, v in sorted(run.data.tags.items()):
        volatile = (
            k in VOLATILE_TAGS
            or k.startswith(VOLATILE_TAG_PREFIXES)
            or CACHE_KEY.match(k)
            or CACHE_STAGE.match(k)
        )
        tags[k] = "*" if volatile else _clean(v, tmp, ids)
    params = {k: _clean(v, tmp, ids) for k, v in sorted(run.data.params.items())}
    metrics = {}
    for key in sorted(run.data.metrics):
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        metrics[key] = _steps(steps)
    inputs = []
    for di in run.inputs.dataset_inputs if run.inputs else []:
        inputs.append(
            {
                "name": di.dataset.name,
                "digest": bool(di.dataset.digest),
                "source_type": di.dataset.source_type,
                "source": _clean(di.dataset.source, tmp, ids),
                "tags": {t.key: t.value for t in di.tags},
            }
        )
    return {
        "status": run.info.status,
        "lifecycle_stage": run.info.lifecycle_stage,
        "run_name": run.info.run_name,
        "params": params,
        "metrics": metrics,
        "tags": tags,
        "inputs": sorted(inputs, key=json.dumps),
        "artifacts": artifact_paths(client, run_id),
    }


def _steps(steps: list[int]) -> str | list[int]:
    """[a, a+1, ..., b] (one value per step) as "a..b", anything else as the list."""
    if steps and steps == list(range(steps[0], steps[0] + len(steps))):
        return f"{steps[0]}..{steps[-1]}"
    return steps


def cache_counts(runs) -> dict[str, dict[str, int]]:
    """stage -> {"hit": trials that found it in the cache, "miss": trials that built it}."""
    counts: dict[str, dict[str, int]] = {}
    for run in runs:
        for k, v in run.data.tags.items():
            m = CACHE_STAGE.match(k)
            if m:
                stage = counts.setdefault(m.group(1), {"hit": 0, "miss": 0})
                stage[v] = stage.get(v, 0) + 1
    return dict(sorted(counts.items()))


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of the run, recursively, sorted (folders end in /)."""
    found = []
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            found.append(info.path + "/")
            found += artifact_paths(client, run_id, info.path)
        else:
            found.append(info.path)
    return sorted(found)


def optuna_shape(storage: str) -> dict:
    """Per Optuna study: its user attrs (run ids written <run id>) and per trial its state,
    params, user and system attr names and intermediate steps."""
    out = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = {}
        for t in study.get_trials(deepcopy=False):
            trials[str(t.number)] = {
                "state": t.state.name,
                "params": t.params,
                "values": None if t.values is None else len(t.values),
                "user_attrs": sorted(t.user_attrs),
                "system_attrs": sorted(t.system_attrs),
                "intermediate_steps": sorted(t.intermediate_values),
            }
        out[summary.study_name] = {
            "directions": [d.name for d in study.directions],
            "user_attrs": sorted(study.user_attrs),
            "trials": trials,
        }
    return out


def diff(expected, actual, where: str = "") -> list[str]:
    """The differences between two shapes, one line each, as paths into them."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = []
        for k in sorted(set(expected) | set(actual), key=str):
            at = f"{where}/{k}"
            if k not in actual:
                lines.append(f"missing    {at} = {_short(expected[k])}")
            elif k not in expected:
                lines.append(f"unexpected {at} = {_short(actual[k])}")
            else:
                lines += diff(expected[k], actual[k], at)
        return lines
    if (
        isinstance(expected, list)
        and isinstance(actual, list)
        and all(isinstance(x, str) for x in expected + actual)
    ):
        gone, new = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
        lines = [f"missing    {where}[] {x}" for x in gone]
        lines += [f"unexpected {where}[] {x}" for x in new]
        if not lines and expected != actual:
            lines.append(f"changed    {where}: {expected} -> {actual}")
        return lines
    if expected != actual:
        return [f"changed    {where}: {_short(expected)} -> {_short(actual)}"]
    return []


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 200 else text[:200] + "..."
