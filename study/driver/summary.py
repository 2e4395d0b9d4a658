"""What a session tells its console apart from trial events (study/driver/progress.py): the data
report once, and at the end where things stand, where the records are and what to do next.

Exit codes (docs/failures.md, `fsvae-study run --help`): 0 the study is
complete and every counted trial finished (or was stopped early by the scheduler); 3 it
is complete but some trials failed; 2 bad input, including a stratum stopped because every
trial of it would fail the same way; 4 superseded: another process took the study over
(study/identity/lease.py) and this driver stopped without writing more; 130 interrupted (Ctrl-C),
to be resumed.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from study.plan import plan as plan_mod
from study.plan import storage
from study.plan.plan import Plan
from study.plan.storage import default_tracking_uri
from study.record.read import Entry
from study.record.schema import ERROR, FAILURE
from study.secrets import redact

EXIT_COMPLETE, EXIT_BAD_INPUT, EXIT_FAILED_TRIALS, EXIT_INTERRUPTED = 0, 2, 3, 130
EXIT_SUPERSEDED = 4  # study.identity.lease.Superseded.exit_code
# A trial's own failures that the same config and data always meet again: fix the config or
# the data rather than retry (fsvae.errors).
REPEATING = ("ConfigError", "DataError", "SplitError", "TrialError", "BackboneError")


def exit_code(complete: bool, interrupted: bool, fatal: bool, failed: int) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if fatal:
        return EXIT_BAD_INPUT
    if not complete:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_TRIALS if failed else EXIT_COMPLETE


def data_line(summary: dict) -> str:
    """What the data stage found, in a few lines: usable of listed images, then one line per
    problem kind with its count and first files."""
    problems = summary.get("problems") or {}
    head = (
        f"data: {summary.get('usable', '?')} of {summary.get('listed', '?')} listed images usable"
    )
    if not problems:
        return head + ", no problem found"
    lines = [head + " (the full report: data_report.json of each trial's MLflow run)"]
    for kind, v in sorted(problems.items(), key=lambda kv: (kv[1].get("action") == "kept", kv[0])):
        what = "used, noted" if v.get("action") == "kept" else "not used"
        more = ", ..." if v["n"] > len(v["first"]) else ""
        lines.append(f"  {what}: {v['n']} {kind}: {', '.join(v['first'])}{more}")
    return "\n".join(lines)


def retry_advice(entries: dict[str, Entry], name: str, where: str) -> str:
    """What to do about the failed trials: `resume --retry-failed` when a retry can end
    otherwise (the infrastructure failed, or the trial's own code, which a fix may mend),
    not when the config or the data is what failed."""
    failed = [e for e in entries.values() if e.state == "failed"]
    repeating = [
        e
        for e in failed
        if e.tags.get(FAILURE) != "infrastructure"
        and e.tags.get(ERROR, "").split(":", 1)[0] in REPEATING
    ]
    if len(repeating) == len(failed):
        return (
            f"  the {len(failed)} failed trial(s) failed on their config or data "
            f"({repeating[0].tags.get(ERROR, '')[:120]}): a retry would fail the same way; "
            f"fix the data, or run the configuration you meant under another --name"
        )
    return (
        f"  re-run the failed trials (after fixing their cause, when it was their own "
        f"code) with: fsvae-study resume --name {name}{where} --retry-failed"
    )


def session_end(
    plan: Plan,
    complete: bool,
    finished: int,
    failed: int,
    closed: int,
    adopted: int,
    fatal: list[str],
    entries: dict[str, Entry],
) -> None:
    """The summary: how the session ended, where its records are, what to do next."""
    name = plan.name
    state = "complete" if complete else "STOPPED" if fatal else "INTERRUPTED"
    print(
        f"\nstudy {name}: {state}; {finished} trials finished, {failed} failed"
        + (f", {adopted} adopted from MLflow" if adopted else "")
        + (f", {closed} unfinished runs closed" if closed else "")
    )
    print(f"  Ray Tune results: {redact(plan.folder)}")
    print(f"  MLflow: experiment {name!r} at {redact(plan.tracking_uri)}")
    if plan.optuna_storage:
        print(f"  Optuna: studies {name}/<stratum> at {redact(plan.optuna_storage)}")
    if plan.tracking_uri.startswith("sqlite:"):
        print(
            f"  open the MLflow UI: mlflow ui --backend-store-uri {redact(plan.tracking_uri)} "
            f"--host 127.0.0.1 --port 5000   (then http://127.0.0.1:5000)"
        )
    default = storage.resolve(plan_mod.DEFAULT_STORAGE)
    where = "" if plan.storage == default else f" --storage {shlex.quote(redact(plan.storage))}"
    local_store = not storage.is_uri(plan.storage) and plan.tracking_uri == default_tracking_uri(
        Path(plan.storage)
    )
    reads = where if local_store else f" --tracking-uri {shlex.quote(redact(plan.tracking_uri))}"
    print(f"  table: fsvae-study table --experiment {name}{reads}")
    print(f"  status: fsvae-study status --name {name}{reads}")
    if plan.optuna_storage:
        print(
            f"  the searches in optuna-dashboard: optuna-dashboard "
            f"{shlex.quote(redact(plan.optuna_storage))}   (docs/analysis.md#optuna-dashboard)"
        )
    if failed and complete:
        print(retry_advice(entries, name, where))
    if fatal:
        print(
            f"  fix what the error says; a study that should run with other data or "
            f"settings is a new study: another --name, or `fsvae-study discard --name "
            f"{name}{where}` first"
        )
    elif not complete:
        print(f"  continue with: fsvae-study resume --name {name}{where}")


def session_header(
    plan: Plan, space, concurrency: int, resources: dict, resuming: bool, closed: int
) -> str:
    """'study paper: 60 trials (grid), 4 at a time, 4 CPU, 0.25 GPU each (resuming, ...)'."""
    from search_spaces import count
    from study.driver import tuner

    strata = f", strata {tuner.strata_text(space)}" if space.strata else ""
    line = (
        f"study {plan.name}: {count(space)} trials ({space.kind}{strata}), "
        f"{concurrency} at a time, {tuner.fmt_resources(resources)} each"
    )
    if resuming:
        left = f"; closed {closed} run(s) its last driver left running" if closed else ""
        line += f" (resuming, session {plan.sessions}{left})"
    return line
