"""A study's Status (study/watch/status.py) as people read it, a block of text, and as
scripts read it, one JSON object (docs/studies.md#watching-a-study)."""

from __future__ import annotations

import json
import shlex
import time

from study.watch.status import Driver, Running, Status


def as_json(status: Status) -> str:
    """One line of JSON: Status.to_dict()."""
    return json.dumps(status.to_dict(), sort_keys=False)


def text(status: Status, resume: str = "") -> str:
    """The block `fsvae-study status` prints. `resume`: the options that `fsvae-study
    resume` needs besides the name (--storage, --tracking-uri), for a stopped study."""
    s, t = status, status.trials
    total = "?" if t["total"] is None else t["total"]
    lines = [
        f"study {s.name} ({s.kind or '?'}): {s.state.upper()}, "
        f"{sum(t[k] or 0 for k in ('finished', 'failed', 'stopped'))} of {total} "
        f"trials ended   "
        f"[{time.strftime('%H:%M:%S', time.localtime(s.read_at))}]",
        f"  record: MLflow {s.tracking_uri}, experiment {s.experiment_id}, parent run "
        f"{s.parent_run_id} {s.parent_status}"
        + (f", {s.sessions} session(s)" if s.sessions is not None else ""),
    ]
    if s.optuna_storage:
        lines.append(f"  Optuna: studies {s.name}/<stratum> at {s.optuna_storage}")
    lines.append(f"  driver: {driver(s.driver)}")
    counts = ", ".join(f"{t[k]} {k}" for k in ("finished", "failed", "stopped", "running"))
    if t["interrupted"]:
        counts += f", {t['interrupted']} interrupted (they run again on resume)"
    to_run = "?" if t["to_run"] is None else t["to_run"]
    lines.append(f"  trials: {counts}; {to_run} still to run, of {total}")
    for r in s.running:
        lines.append(f"    {running(r)}")
    lines.append(f"  time left: {left(s.time_left)}")
    lines.append(f"  cost so far: {spent(s.cost)}")
    if s.state == "stopped":
        lines.append(f"  continue with: fsvae-study resume --name {shlex.quote(s.name)}{resume}")
    lines.append(f"  MLflow UI: {s.open['mlflow']}")
    if s.open.get("optuna"):
        lines.append(f"  Optuna dashboard: {s.open['optuna']}   (pip install optuna-dashboard)")
    return "\n".join(lines)


def driver(d: Driver) -> str:
    """ "`run` on host h, pid 42 (lease 1): alive (its process runs on this machine)"."""
    if d.host is None and d.pid is None:
        who = "none recorded"
    else:
        who = f"`{d.role or '?'}` on host {d.host or '?'}, pid {d.pid if d.pid else '?'}" + (
            f" (lease {d.lease})" if d.lease is not None else ""
        )
    beat = (
        ""
        if d.heartbeat_age_s is None
        else f"last heartbeat {d.heartbeat_age_s:.0f} s ago by the driver's clock"
    )
    why = {
        "lease": "it released its lease",
        "process": f"its process {'runs' if d.state == 'alive' else 'is gone'} on this machine",
        "heartbeat": beat,
        "nothing": "no lease or heartbeat says",
    }[d.judged_by]
    word = {"alive": "alive", "dead": "NOT alive", "ended": "ended", "unknown": "unknown"}[d.state]
    return f"{who}: {word} ({why})"


def running(r: Running) -> str:
    """One running trial: key, stage and epoch, latest loss and val, node, times."""
    stage = r.stage or "starting"
    if r.epoch is not None:
        stage += f" epoch {r.epoch}" + (f"/{r.epochs}" if r.epochs else "")
    parts = [f"{r.key:<14}", f"{stage:<22}"]
    if r.loss is not None:
        parts.append(f"loss {r.loss:.4g}")
    if r.val is not None:
        parts.append(f"val {r.val:.4f}")
    parts.append(f"on {r.node or '?'}")
    if r.elapsed_s is not None:
        parts.append(f"for {span(r.elapsed_s)}")
    parts.append(
        "no progress yet" if r.progress_age_s is None else f"progress {span(r.progress_age_s)} old"
    )
    return "  ".join(parts)


def left(estimate: dict) -> str:
    seconds, mean = estimate.get("seconds"), estimate.get("mean_trial_s")
    if seconds is None:
        return f"unknown ({estimate.get('why')})"
    if estimate.get("why") == "complete":
        return "none (complete)"
    n = estimate.get("concurrency", 1)
    return f"about {span(seconds)} (a trial takes {span(mean)} on average; {n} at a time)"


def spent(c: dict) -> str:
    if not c.get("measured"):
        return "not measured (no ended trial run records its cost)"
    out = f"{c['cpu_h']:.3g} CPU-hours"
    if c.get("gpu_h", 0) > 0:
        out += f", {c['gpu_h']:.3g} GPU-hours"
    out += f" ({c['wall_h']:.3g} hours of trial time, {c['measured']} ended trial run(s)"
    if c["measured"] < c["runs"]:
        out += f"; {c['runs'] - c['measured']} more ended before trials recorded their cost"
    return out + ")"


def span(seconds: float | None) -> str:
    """12 s, 3m05s, 1h02m."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
