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

import math
import socket
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.entities import DatasetInput, Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from study.errors import StudyError
from study.hooks import faults
from study.record.live import Live, system_seconds
from study.record.provenance import library_tags
from study.record.schema import (
    ATTEMPT,
    CURVE_KEYS,
    ERROR,
    FAILURE,
    FIGURES,
    INTERRUPTED,
    MINORITY_CLASSES,
    NODE,
    PARENT,
    PREVIOUS_ERROR,
    PROGRESS,
    REPLACES,
    ROLE,
    TRIAL_KEY,
)
from study.secrets import redact_text

if TYPE_CHECKING:
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor


class RecordConflict(StudyError):
    """A write would change a FINISHED run, which the record never does."""


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

    def __init__(
        self,
        tracking_uri: str,
        exp_id: str,
        parent_id: str,
        key: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        replaces: str | None = None,
        dataset: DatasetInput | None = None,
        known: list[str] | None = None,
        fence=None,
        epochs: dict[str, int] | None = None,
    ):
        self.client = MlflowClient(tracking_uri)
        # While the run is open: its curves and progress sent every live_seconds() from a
        # thread (study/record/live.py); `epochs`: each stage's epochs, for "epoch e of n".
        self.live = Live(self._send, epochs or {}, on_long=self._system_metrics)
        # MLflow's system-metrics monitor of the run, once it runs long
        self._system: SystemMetricsMonitor | None = None
        # The study's lease (study/identity/lease.py): fence() before the run is made and before
        # it ends; it raises once another driver took the study.
        self.fence = fence if fence is not None else (lambda: None)
        self.dataset = dataset
        self.exp_id, self.parent_id, self.key = exp_id, parent_id, key
        self.replaces = replaces
        self.run_name, self.tags = run_name, tags or {}
        self.known = list(dict.fromkeys(known or []))
        self.run_id: str | None = None

    def _started(self) -> str:
        """The run's id, for a write to it: start() (or finished_run) has set it by then."""
        if self.run_id is None:
            raise RuntimeError(f"trial {self.key}: a write to its run before it was started")
        return self.run_id

    def earlier(self) -> list:
        """The active runs of this key (and of the key it retries), oldest first."""
        found = []
        for run_id in self.known:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # removed since: nothing to replace
                continue
            if run.info.lifecycle_stage == "active" and run.data.tags.get(TRIAL_KEY) in (
                self.key,
                self.replaces,
            ):
                found.append(run)
        return sorted(found, key=lambda r: r.info.start_time or 0)

    def finished_run(self, active_config: dict):
        """This key's FINISHED run with these very params, if one exists."""
        want = {p.key: p.value for p in params_of(active_config)}
        for run in self.earlier():
            if (
                run.data.tags.get(TRIAL_KEY) == self.key
                and run.info.status == "FINISHED"
                and run.data.params == want
            ):
                self.run_id = run.info.run_id
                return run
        return None

    def start(self, active_config: dict) -> str:
        """A new run for this key, with its params and dataset. Its earlier runs that did
        not finish (and a failed trial's that it retries) are replaced; a FINISHED run is
        never touched: a key that has one is done, so starting it again is a conflict,
        never an overwrite."""
        earlier = self.earlier()
        done = [
            r.info.run_id
            for r in earlier
            if r.info.status == "FINISHED" and r.data.tags.get(TRIAL_KEY) == self.key
        ]
        if done:
            raise RecordConflict(
                f"trial {self.key} already has a FINISHED run ({done[0]}) "
                f"with other params; it is not replaced"
            )
        tags = {
            PARENT: self.parent_id,
            ROLE: "trial",
            TRIAL_KEY: self.key,
            ATTEMPT: str(len(earlier) + 1),
            NODE: socket.gethostname(),
            PROGRESS: self.live.state_json(),
            **self.tags,
        }
        if earlier:
            tags[REPLACES] = ",".join(r.info.run_id for r in earlier)
            last_error = [r.data.tags[ERROR] for r in earlier if ERROR in r.data.tags]
            if last_error:
                tags[PREVIOUS_ERROR] = last_error[-1][:4000]
        self.fence()
        run = self.client.create_run(
            self.exp_id, tags={**tags, **library_tags()}, run_name=self.run_name
        )
        self.run_id = run.info.run_id
        self.known.append(self.run_id)  # a later attempt in this process replaces it
        self.client.log_batch(self.run_id, params=params_of(active_config))
        if self.dataset is not None:
            self.client.log_inputs(self.run_id, datasets=[self.dataset])
        for old in earlier:
            if old.info.status == "RUNNING":
                self.client.set_terminated(old.info.run_id, "KILLED")
            self.client.delete_run(old.info.run_id)
        self.live.start()
        return self.run_id

    def progress(self, event: dict) -> None:
        """Turns fsvae progress events into MLflow metrics and tags, held for the next
        write (the live thread's, within live_seconds(), or the trial's last)."""
        stage = event.get("stage")
        now = int(time.time() * 1000)
        metrics: list[Metric] = []
        tags: list[RunTag] = []
        if stage in CURVE_KEYS and "epoch" in event:
            for k in CURVE_KEYS[stage]:
                v = event.get(k)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    metrics.append(Metric(f"{stage}_{k}", float(v), now, event["epoch"]))
            if not event.get("replayed"):
                self.live.epoch(event)
        elif stage in CURVE_KEYS and "best_epoch" in event:
            metrics.append(Metric(f"{stage}_best_epoch", float(event["best_epoch"]), now, 0))
        elif stage == "data" and isinstance(event.get("splits"), dict):
            # The split sizes this copy of the data gives (the paper's Table 1 has its own).
            for split, counts in event["splits"].items():
                if isinstance(counts, dict) and "usable" in counts:
                    metrics.append(Metric(f"data_usable_{split}", float(counts["usable"]), now, 0))
        elif stage == "cache":
            tags += [
                RunTag(f"cache.{event['name']}", "hit" if event["hit"] else "miss"),
                RunTag(f"cache.{event['name']}.key", event["key"]),
            ]
            if event.get("repaired"):
                tags.append(RunTag(f"cache.{event['name']}.repaired", event["repaired"]))
            self.live.stage(event["name"])
        if self.live.add(metrics, tags) >= 900:
            self.flush()

    def _system_metrics(self) -> None:
        """MLflow's own system metrics (system/cpu_utilization_percentage, ..., and the
        GPU's with nvidia-ml-py) for the run, sampled every system_seconds(): started once
        the trial has run FSVAE_LIVE_S, so that a short trial costs no more writes."""
        interval = system_seconds()
        if interval <= 0 or self.run_id is None:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._system = SystemMetricsMonitor(
            self.run_id, sampling_interval=interval, tracking_uri=self.client.tracking_uri
        )
        self._system.start()

    def _stop_live(self) -> None:
        self.live.stop()
        if self._system is not None:
            self._system.finish()
            self._system = None

    def flush(self) -> None:
        """Sends what is pending now."""
        self._send(*self.live.take())

    def _send(self, metrics: list[Metric], tags: list[RunTag]) -> None:
        """log_batch takes at most 1000 metrics and 100 tags (a trial has fewer than 10)."""
        chunks = [metrics[s : s + 900] for s in range(0, len(metrics), 900)] or [[]]
        for i, chunk in enumerate(chunks):
            first_tags = tags if i == 0 else []
            if chunk or first_tags:
                self.client.log_batch(self._started(), metrics=chunk, tags=first_tags)

    def finish(self, result: dict, out_dir: Path | None, figures_later: bool = False) -> None:
        """The trial's last write (what is pending, its final metrics and timings, its
        minority classes) in as few requests as log_batch allows, its artifacts, then
        FINISHED. figures_later: its PNG figures come after (study/figures/late.py), and
        the run says so until they are there. Its cost (fsvae's result["cost"]: wall, CPU
        and GPU seconds, peak memories) as metrics cost_<key>."""
        self._stop_live()
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in result["metrics"].items()]
        metrics += [Metric(f"time_{k}_s", float(v), now, 0) for k, v in result["timings"].items()]
        metrics += [
            Metric(f"cost_{k}", float(v), now, 0) for k, v in (result.get("cost") or {}).items()
        ]
        tags = [RunTag(MINORITY_CLASSES, ",".join(result["minority_classes"]))]
        if figures_later:
            tags.append(RunTag(FIGURES, "pending"))
        self.live.add(metrics, tags)
        self.flush()
        self._artifacts(out_dir)
        faults.pause("trial_finishing", key=self.key)
        self.fence()
        self.client.set_terminated(self._started(), RunStatus.to_string(RunStatus.FINISHED))

    def fail(self, error: BaseException, out_dir: Path | None) -> str:
        """Records the trial's own failure; returns its reason."""
        self._stop_live()
        self.fence()
        try:
            self.flush()
        except Exception:  # the run is failing anyway; its reason matters more
            pass
        reason = redact_text(f"{type(error).__name__}: {error}")
        self.client.log_batch(
            self._started(), tags=[RunTag(ERROR, reason[:4000]), RunTag(FAILURE, "trial")]
        )
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "error.txt").write_text(
                redact_text(
                    "".join(traceback.format_exception(type(error), error, error.__traceback__))
                )
            )
        self._artifacts(out_dir)
        self.fence()
        self.client.set_terminated(self._started(), RunStatus.to_string(RunStatus.FAILED))
        return reason

    def interrupted(self, why: str) -> None:
        """Its study stopped it (Ctrl-C, the driver's stop, a lost session): KILLED and
        tagged so, and it runs again on resume. Whether a scheduler stopped it instead is
        the driver's to record (study/driver/outcomes.py): inside the trial both look alike."""
        self._stop_live()
        self.fence()
        self.flush()
        self.client.log_batch(self._started(), tags=[RunTag(INTERRUPTED, why)])
        self.client.set_terminated(self._started(), RunStatus.to_string(RunStatus.KILLED))

    def _artifacts(self, out_dir: Path | None) -> None:
        if out_dir is not None and out_dir.is_dir():
            self.client.log_artifacts(self._started(), str(out_dir))
