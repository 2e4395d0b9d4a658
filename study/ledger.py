"""What a study has done so far, read back from MLflow: one entry per trial key.

MLflow is the study's durable record (README "Failures and resuming"): a trial's run is
FINISHED before anyone else hears of its result, so whatever killed the driver, a finished
trial is found here and never computed again. Ray Tune's own experiment state is saved
only now and then and is not consulted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from study.schema import ERROR, FAILURE, INTERRUPTED, PARENT, POINT, STOPPED, TRIAL_KEY


@dataclass
class Entry:
    """The run that counts for one trial key: its FINISHED run, else its latest."""

    key: str
    run_id: str
    status: str  # FINISHED, FAILED, KILLED or RUNNING, as MLflow has it
    start_time: int
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """finished | failed | stopped (ended early by a scheduler) | unfinished."""
        if self.status == "FINISHED":
            return "finished"
        if self.status == "FAILED":
            return "failed"
        if self.status == "KILLED" and STOPPED in self.tags:
            return "stopped"
        return "unfinished"  # RUNNING when its driver died, or KILLED by an interruption

    @property
    def point(self) -> dict | None:
        """What the study handed the trial (tag fsvae.point), None for a run written before
        that tag existed."""
        try:
            return json.loads(self.tags[POINT])
        except (KeyError, ValueError):
            return None

    @property
    def reason(self) -> str:
        return self.tags.get(ERROR, "")

    @property
    def failure(self) -> str:
        """Who failed: "trial" (its own code) or "infrastructure"."""
        return self.tags.get(FAILURE, "trial")


def read(client, experiment_id: str, parent_id: str) -> dict[str, Entry]:
    """key -> the run that counts for it (its FINISHED run, else its latest), for every
    child run of the study's parent run: keys are unique within one parent only."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT}` = '{parent_id}'",
                              max_results=50000)
    out: dict[str, Entry] = {}
    for run in sorted(runs, key=lambda r: (r.info.status == "FINISHED", r.info.start_time or 0)):
        key = run.data.tags.get(TRIAL_KEY)
        if key is None:
            continue
        out[key] = Entry(key=key, run_id=run.info.run_id, status=run.info.status,
                         start_time=run.info.start_time or 0, metrics=dict(run.data.metrics),
                         params=dict(run.data.params), tags=dict(run.data.tags))
    return dict(sorted(out.items(), key=lambda kv: kv[1].start_time))


def close_stale(client, entries: dict[str, Entry], why: str) -> int:
    """Runs still RUNNING when no trial of the study can be running (its driver is starting,
    or its Ray is down): their processes are gone. They become KILLED, tagged as
    interrupted, and their trials run again. Each is read again just before, so that a run
    that finished since `entries` were read stays FINISHED. Returns how many were closed."""
    closed = 0
    for entry in entries.values():
        if entry.status != "RUNNING":
            continue
        now = client.get_run(entry.run_id).info.status
        if now != "RUNNING":
            entry.status = now
            continue
        client.set_tag(entry.run_id, INTERRUPTED, why)
        client.set_terminated(entry.run_id, "KILLED")
        entry.status = "KILLED"
        entry.tags[INTERRUPTED] = why
        closed += 1
    return closed
