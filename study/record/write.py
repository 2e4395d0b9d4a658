"""What a study writes to MLflow, and how: the names here are what users see in the UI and
what `results/` reads back (the tag names are in study/record/schema.py).

One experiment per study name. One parent run per study:
  tags   fsvae.role=study, fsvae.space_kind (grid|optuna), fsvae.objective, fsvae.mode (a
         multi-objective search: comma-separated, the primary first), fsvae.strata,
         fsvae.data_fingerprint, fsvae.code_version (git describe), fsvae.command,
         fsvae.optuna_storage (searches)
  on every run, parent and child: tags mlflow.source.git.commit and fsvae.git_dirty (the
         driver's checkout), fsvae.version.<python|torch|torchvision|cuda|ray|optuna|mlflow>
         (of the process that wrote the run); the dataset as an input (its folder, digest =
         the data fingerprint)
  params the space's name/kind/preset/objective/num_samples, and its fixed keys
  artifacts space.yaml (the file as given), space.json (as resolved), command.txt
  and, per search stratum whose shared backbone was built before its trials
  (study/driver/prebuild.py): tags cache.backbone.prebuild.<stratum>=hit|miss and .key (or
  .error), metrics prebuild_s, prebuild_wall_s, prebuild_cpu_s, prebuild_cpus,
  prebuild_gpus (step = stratum index)
  and, once the best model is logged (study/model/best.py), the MLflow model best_model and
  tags fsvae.best_model (its URI, also on the best trial's run) and fsvae.best_model.run
  and the plan's own tags (study.plan.making.make_plan's `tags`): a confirmation's parent has
  fsvae.confirms=<the search>, whose parent `fsvae-study confirm` tags fsvae.confirmed_by
One child run per trial (its key, fsvae.trial_key, is its identity):
  tags   mlflow.parentRunId, fsvae.role=trial, fsvae.trial_key, fsvae.trial_id (the Ray
         Tune trial that wrote it), fsvae.stratum, fsvae.attempt, cache.<stage>=hit|miss
         and cache.<stage>.key for data/backbone/vae (and cache.<stage>.repaired=<read
         error> where an unreadable entry was rebuilt); failed runs: fsvae.error (the
         reason) and fsvae.failure (trial | infrastructure); fsvae.stopped (ended early by
         a scheduler), fsvae.interrupted (its study stopped before it finished)
  params exactly the trial's active config keys (fsvae.config.active_config)
  metrics val_* and test_* finals (acc, acc_majority, acc_minority, acc_h, *_samples,
         class_acc/<class>), curves per epoch (step = epoch): backbone_{train_loss,
         train_acc,val_acc,val_acc_h,lr,images_per_s}, vae_{recon,kl,beta,loss,val_recon,val_kl},
         classifier_{train_loss,train_acc,val_acc,val_acc_h}; *_best_epoch; time_*_s;
         data_usable_{train,val,test} (the usable images of each split of this data)
  artifacts the trial's outputs (config.json, data_report.json, split/, metrics.json,
         confusion.json, history.json, cache.json, model/) and figures/ (confusion matrix,
         curves)
A re-run of a key (a retry, or a resumed study) replaces its earlier unfinished or failed
run: the new run is tagged fsvae.replaces=<old ids> and the old one is deleted (MLflow's
soft delete), so the UI shows one run per trial and no stale RUNNING run. A FINISHED run is
never deleted, overwritten or demoted: its key is done.
"""
from __future__ import annotations

import functools
import json
import math
import subprocess
import time
import traceback
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from study.hooks import faults
from study.errors import StudyError
from study.secrets import redact_text
from study.record.schema import (ATTEMPT, CURVE_KEYS, ERROR, FAILURE, FIGURES, GIT_DIRTY,
                          INTERRUPTED, MINORITY_CLASSES, PARENT, PREVIOUS_ERROR, REPLACES,
                          ROLE, TRIAL_KEY, VERSION)


class RecordConflict(StudyError):
    """A write would change a FINISHED run, which the record never does."""


def git_state() -> dict[str, str]:
    """The project checkout's commit and whether its tree had changes, as MLflow's own tag
    (`mlflow.source.git.commit`, which its UI shows) and fsvae.git_dirty; {} outside git."""
    import fsvae

    root = str(Path(fsvae.__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "."],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if commit.returncode != 0 or status.returncode != 0:
        return {}
    return {"mlflow.source.git.commit": commit.stdout.strip(),
            GIT_DIRTY: "true" if status.stdout.strip() else "false"}


@functools.lru_cache(maxsize=1)
def library_tags() -> dict[str, str]:
    """The versions of what computed a run, in the process that computed it (a cluster's
    nodes may differ): fsvae.version.<python|torch|torchvision|cuda|ray|optuna|mlflow>.
    torch's and torchvision's are their builds' own (e.g. 2.14.1+cu130), cuda the CUDA
    torch was built with ("none" for a CPU build); read without importing torch, which
    the driver never needs."""
    import platform
    from importlib import metadata

    tags = {VERSION + "python": platform.python_version()}
    for lib in ("torch", "torchvision", "ray", "optuna", "mlflow"):
        try:
            tags[f"{VERSION}{lib}"] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            tags[f"{VERSION}{lib}"] = "not installed"
    build = _module_constants("torch", "version.py")
    tags[VERSION + "torch"] = build.get("__version__", tags[VERSION + "torch"])
    tags[VERSION + "cuda"] = build.get("cuda") or "none"
    vision = _module_constants("torchvision", "version.py")
    tags[VERSION + "torchvision"] = vision.get("__version__",
                                                   tags[VERSION + "torchvision"])
    return tags


def _module_constants(package: str, filename: str) -> dict[str, str]:
    """String constants assigned at the top of a package's file (its version.py)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return {}
    try:
        tree = ast.parse((Path(spec.origin).parent / filename).read_text())
    except (OSError, SyntaxError):
        return {}
    found = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant) \
                and isinstance(value.value, str):
            found[target.id] = value.value
    return found


def dataset_input(data: str, fingerprint: str, context: str) -> DatasetInput:
    """The dataset as an MLflow input: its folder as the source, the data fingerprint (of
    its file lists and files' sizes and times, fsvae.data.fingerprint) as the digest."""
    source = json.dumps({"uri": data})
    dataset = Dataset(name=Path(data).name or data, digest=fingerprint[:36],
                      source_type="local", source=source)
    return DatasetInput(dataset=dataset, tags=[InputTag("mlflow.data.context", context)])


def git_version() -> str:
    """The project's version and `git describe --dirty` of its checkout, where there is one."""
    import fsvae

    root = Path(fsvae.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"{fsvae.__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return fsvae.__version__


def mark_failed(client: MlflowClient, run_id: str, reason: str, failure: str) -> None:
    """Ends a run as FAILED with its reason (the driver's view: retries ran out)."""
    client.log_batch(run_id, tags=[RunTag(ERROR, reason[:4000]), RunTag(FAILURE, failure)])
    client.set_terminated(run_id, "FAILED")


def params_of(config: dict) -> list[Param]:
    return [Param(k, "None" if v is None else str(v)) for k, v in sorted(config.items())]


class TrialRecorder:
    """The MLflow side of one trial; lives in the trial's process. `key` is the trial's
    identity; `replaces` the key of a failed trial this one retries, if any; `known` the
    ids of the runs its key (and the key it retries) already has, which the driver read
    from the record and a retried attempt left behind: what it looks at instead of
    searching the experiment (MLflow has no index on tag values)."""

    LIVE_STAGE_S = 10.0  # a stage that took longer sends its curves when it ends

    def __init__(self, tracking_uri: str, exp_id: str, parent_id: str, key: str,
                 run_name: str, tags: dict[str, str] | None = None,
                 replaces: str | None = None, dataset: DatasetInput | None = None,
                 known: list[str] | None = None, fence=None):
        self.client = MlflowClient(tracking_uri)
        # The study's lease (study/identity/lease.py): fence() before the run is made and before
        # it ends; it raises once another driver took the study.
        self.fence = fence if fence is not None else (lambda: None)
        self.dataset = dataset
        self.exp_id, self.parent_id, self.key = exp_id, parent_id, key
        self.replaces = replaces
        self.run_name, self.tags = run_name, tags or {}
        self.known = list(dict.fromkeys(known or []))
        self.run_id: str | None = None
        self._pending: list[Metric] = []
        self._tags: list[RunTag] = []
        self._stage_start = time.monotonic()

    def earlier(self) -> list:
        """The active runs of this key (and of the key it retries), oldest first."""
        found = []
        for run_id in self.known:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # removed since: nothing to replace
                continue
            if run.info.lifecycle_stage == "active" and run.data.tags.get(TRIAL_KEY) in (
                    self.key, self.replaces):
                found.append(run)
        return sorted(found, key=lambda r: r.info.start_time or 0)

    def finished_run(self, active_config: dict):
        """This key's FINISHED run with these very params, if one exists."""
        want = {p.key: p.value for p in params_of(active_config)}
        for run in self.earlier():
            if run.data.tags.get(TRIAL_KEY) == self.key and run.info.status == "FINISHED" \
                    and run.data.params == want:
                self.run_id = run.info.run_id
                return run
        return None

    def start(self, active_config: dict) -> str:
        """A new run for this key, with its params and dataset. Its earlier runs that did
        not finish (and a failed trial's that it retries) are replaced; a FINISHED run is
        never touched: a key that has one is done, so starting it again is a conflict,
        never an overwrite."""
        earlier = self.earlier()
        done = [r.info.run_id for r in earlier if r.info.status == "FINISHED"
                and r.data.tags.get(TRIAL_KEY) == self.key]
        if done:
            raise RecordConflict(f"trial {self.key} already has a FINISHED run ({done[0]}) "
                                 f"with other params; it is not replaced")
        tags = {PARENT: self.parent_id, ROLE: "trial", TRIAL_KEY: self.key,
                ATTEMPT: str(len(earlier) + 1), **self.tags}
        if earlier:
            tags[REPLACES] = ",".join(r.info.run_id for r in earlier)
            last_error = [r.data.tags[ERROR] for r in earlier if ERROR in r.data.tags]
            if last_error:
                tags[PREVIOUS_ERROR] = last_error[-1][:4000]
        self.fence()
        run = self.client.create_run(self.exp_id, tags={**tags, **library_tags()},
                                     run_name=self.run_name)
        self.run_id = run.info.run_id
        self.known.append(self.run_id)  # a later attempt in this process replaces it
        self.client.log_batch(self.run_id, params=params_of(active_config))
        if self.dataset is not None:
            self.client.log_inputs(self.run_id, datasets=[self.dataset])
        for old in earlier:
            if old.info.status == "RUNNING":
                self.client.set_terminated(old.info.run_id, "KILLED")
            self.client.delete_run(old.info.run_id)
        self._stage_start = time.monotonic()
        return self.run_id

    def progress(self, event: dict) -> None:
        """Turns fsvae progress events into MLflow metrics and tags (batched)."""
        stage = event.get("stage")
        now = int(time.time() * 1000)
        if stage in CURVE_KEYS and "epoch" in event:
            for k in CURVE_KEYS[stage]:
                v = event.get(k)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._pending.append(Metric(f"{stage}_{k}", float(v), now, event["epoch"]))
        elif stage in CURVE_KEYS and "best_epoch" in event:
            # A stage ended. A long one sends its curves now (one write, not one per epoch),
            # so that the MLflow UI shows a running trial's progress; a quick one (a cached
            # or small stage) waits for the trial's last write.
            self._pending.append(Metric(f"{stage}_best_epoch", float(event["best_epoch"]),
                                        now, 0))
            if time.monotonic() - self._stage_start >= self.LIVE_STAGE_S:
                self.flush()
            self._stage_start = time.monotonic()
        elif stage == "data" and isinstance(event.get("splits"), dict):
            # The split sizes this copy of the data gives (the paper's Table 1 has its own).
            for split, counts in event["splits"].items():
                if isinstance(counts, dict) and "usable" in counts:
                    self._pending.append(Metric(f"data_usable_{split}",
                                                float(counts["usable"]), now, 0))
        elif stage == "cache":
            self._tags += [RunTag(f"cache.{event['name']}", "hit" if event["hit"] else "miss"),
                           RunTag(f"cache.{event['name']}.key", event["key"])]
            if event.get("repaired"):
                self._tags.append(RunTag(f"cache.{event['name']}.repaired", event["repaired"]))
        if len(self._pending) >= 900:
            self.flush()

    def flush(self) -> None:
        """Sends what is pending: log_batch takes at most 1000 metrics (and 100 tags; a
        trial has fewer than 10)."""
        metrics, tags = self._pending, self._tags
        self._pending, self._tags = [], []
        chunks = [metrics[s:s + 900] for s in range(0, len(metrics), 900)] or [[]]
        for i, chunk in enumerate(chunks):
            first_tags = tags if i == 0 else []
            if chunk or first_tags:
                self.client.log_batch(self.run_id, metrics=chunk, tags=first_tags)

    def finish(self, result: dict, out_dir: Path | None, figures_later: bool = False) -> None:
        """The trial's last write (what is pending, its final metrics and timings, its
        minority classes) in as few requests as log_batch allows, its artifacts, then
        FINISHED. figures_later: its PNG figures come after (study/figures/late.py), and
        the run says so until they are there."""
        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, 0) for k, v in result["metrics"].items()]
        self._pending += [Metric(f"time_{k}_s", float(v), now, 0)
                          for k, v in result["timings"].items()]
        self._tags.append(RunTag(MINORITY_CLASSES, ",".join(result["minority_classes"])))
        if figures_later:
            self._tags.append(RunTag(FIGURES, "pending"))
        self.flush()
        self._artifacts(out_dir)
        faults.pause("trial_finishing", key=self.key)
        self.fence()
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def fail(self, error: BaseException, out_dir: Path | None) -> str:
        """Records the trial's own failure; returns its reason."""
        self.fence()
        try:
            self.flush()
        except Exception:  # the run is failing anyway; its reason matters more
            pass
        reason = redact_text(f"{type(error).__name__}: {error}")
        self.client.log_batch(self.run_id, tags=[RunTag(ERROR, reason[:4000]),
                                                 RunTag(FAILURE, "trial")])
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "error.txt").write_text(redact_text("".join(
                traceback.format_exception(type(error), error, error.__traceback__))))
        self._artifacts(out_dir)
        self.fence()
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED))
        return reason

    def interrupted(self, why: str) -> None:
        """Its study stopped it (Ctrl-C, the driver's stop, a lost session): KILLED and
        tagged so, and it runs again on resume. Whether a scheduler stopped it instead is
        the driver's to record (study/driver/outcomes.py): inside the trial both look alike."""
        self.fence()
        self.flush()
        self.client.log_batch(self.run_id, tags=[RunTag(INTERRUPTED, why)])
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.KILLED))

    def _artifacts(self, out_dir: Path | None) -> None:
        if out_dir is not None and out_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(out_dir))

