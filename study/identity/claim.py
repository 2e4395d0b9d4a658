"""A session's claim on its study in the record: a new study takes a free name, a resume
continues the study that holds it (docs/failures.md; the rule is in
study/identity/names.py). Runs in the driver once it holds the study's lease
(study/identity/lease.py), before any trial."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import search_spaces
from study.errors import StudyError
from study.identity import names as identity
from study.identity import parent
from study.plan import plan as plan_mod
from study.plan import storage
from study.plan.plan import Plan
from study.plan.storage import default_tracking_uri
from study.record.schema import PLAN
from study.secrets import redact


@dataclass
class Claim:
    """What a session asks of the record: `new` (the name must be free), `resume` (the
    study holding the name, continued) or `either` (`run --resume`: continue it if it
    exists, checking that it is the same study, else start it)."""

    mode: str
    retry_failed: bool = False
    accept_changed_data: bool = False


@dataclass
class Claimed:
    plan: Plan  # the study's own plan, with its parent run, experiment and this session
    new: bool  # a new study (its parent run was made now)

    @property
    def parent_run_id(self) -> str:
        """The study's parent run, which claim() made or found."""
        return self.plan.claimed_ids()[1]


def claim(
    client, plan: Plan, space: search_spaces.Space, ask: Claim, local_storage: Path | None, held
) -> Claimed:
    """The study's parent run, made or taken over by the holder of its lease, `held`."""
    name = plan.name
    exp_id = parent.ensure_experiment(client, name, local_storage)
    own = plan.parent_run_id if ask.mode == "resume" else None
    holder, orphans = identity.holder(client, exp_id, own)
    parent.close_orphans(client, orphans)
    optuna_store = plan.optuna_storage or plan_mod.default_optuna_storage(plan.storage)
    optuna = identity.optuna_studies(optuna_store, name)
    if holder is None:
        if ask.mode == "resume":
            raise StudyError(
                f"no study {name!r} to resume in {redact(plan.tracking_uri)} "
                f"(its record was discarded or deleted)"
            )
        _refuse_optuna_orphans(name, optuna, optuna_store)
        _clear_stale_folder(plan)
        plan = plan.replace(sessions=1, experiment_id=exp_id, parent_run_id=None)
        plan.parent_run_id = parent.start_parent(client, exp_id, plan, space, held)
        return Claimed(plan, new=True)
    parent_id = holder.info.run_id
    if ask.mode == "new":
        trials = "with trials" if identity.has_trials(client, exp_id, parent_id) else "starting"
        where = where_flags(plan)
        raise StudyError(
            f"study {name!r} already exists in {redact(plan.tracking_uri)} (parent run "
            f"{parent_id}, {holder.info.status.lower()}, {trials}): continue it with --resume "
            f"(or `fsvae-study resume --name {name}{where}`), discard it with `fsvae-study "
            f"discard --name {name}{where}`, or choose another --name"
        )
    if plan.parent_run_id != parent_id:  # the plan of `run --resume`, or a stale one
        plan = _continued(client, holder, plan, ask)
    _refuse_foreign_optuna(name, optuna, parent_id, plan.optuna_storage)
    client.update_run(parent_id, status="RUNNING")
    parent.tag_driver(client, parent_id, held)
    return Claimed(plan.replace(experiment_id=exp_id, sessions=plan.sessions + 1), new=False)


def where_flags(plan: Plan) -> str:
    """The flags that find this study again: --storage unless the default, --tracking-uri
    unless the default store under it."""
    out = ""
    if plan.storage != storage.resolve(plan_mod.DEFAULT_STORAGE):
        out += f" --storage {shlex.quote(redact(plan.storage))}"
    if storage.is_uri(plan.storage) or plan.tracking_uri != default_tracking_uri(
        Path(plan.storage)
    ):
        out += f" --tracking-uri {shlex.quote(redact(plan.tracking_uri))}"
    return out


def _continued(client, holder, plan: Plan, ask: Claim) -> Plan:
    """The plan of the study that holds the name, continued where `plan` says: its folder,
    its tracking URI, its data path (the same data), its cluster; for `run --resume`, after
    checking that `plan` asks for that study."""
    stored = _stored_plan(client, holder, plan)
    if ask.mode == "either":
        changed = plan_mod.differences(stored, plan, ask.accept_changed_data)
        if changed:
            raise StudyError(
                f"study {plan.name!r} was started with {'; '.join(changed)}; "
                f"resume it without changing that, or choose another --name"
            )
    given = plan.optuna_storage
    if given == plan_mod.default_optuna_storage(plan.storage):
        given = None  # not given: the study's own default moves with its folder
    moved = plan_mod.relocate(stored, plan.storage, plan.tracking_uri, given)
    return moved.replace(
        data=plan.data,
        base={**moved.base, "data": plan.data},
        data_content=plan.data_content,
        address=plan.address,
    )


def _stored_plan(client, holder, plan: Plan) -> Plan:
    """The plan of the study that holds the name: its study.json here if that is its own,
    else the one its parent run carries."""
    local = plan_mod.read(plan.storage, plan.name)
    if local is not None and local.parent_run_id == holder.info.run_id:
        return local
    stored = parent.read_plan(client, holder.info.run_id)
    if stored is None:
        raise StudyError(
            f"study {plan.name!r} exists (parent run {holder.info.run_id}) "
            f"but its record carries no {PLAN} and its folder {plan.folder} has "
            f"none of it: resume it with --storage where it ran"
        )
    return stored


def _refuse_optuna_orphans(name: str, optuna: dict, store: str | None) -> None:
    busy = {n: s for n, s in optuna.items() if s["trials"]}
    if busy:
        listed = ", ".join(f"{n!r} ({s['trials']} trials)" for n, s in sorted(busy.items()))
        raise StudyError(
            f"the name {name!r} is taken in the Optuna store {redact(store)} by {listed}, which "
            f"no MLflow parent run records (its MLflow record was deleted, or another "
            f"tracking store has it): remove it with `fsvae-study discard --name {name} "
            f"--optuna-storage {redact(store)}` (or `optuna delete-study --study-name NAME "
            f"--storage URL`), or choose another --name"
        )


def _refuse_foreign_optuna(name: str, optuna: dict, parent_id: str, store: str | None) -> None:
    foreign = {
        n: s for n, s in optuna.items() if s["parent"] not in (None, parent_id) and s["trials"]
    }
    if foreign:
        n, s = sorted(foreign.items())[0]
        raise StudyError(
            f"the Optuna study {n!r} in {redact(store)} belongs to another record of "
            f"{name!r} (parent run {s['parent']}), not to this study's ({parent_id}): give "
            f"--optuna-storage the store of this study, or remove that one with `optuna "
            f"delete-study --study-name {n!r} --storage URL`"
        )


def _clear_stale_folder(plan: Plan) -> None:
    """A new study in a folder that an earlier study of this name left (its record was
    discarded or deleted, so the name is free): that study's Tune experiments go, so that
    the new one's sessions do not land in them. A folder whose study.json names another
    tracking store is another study's: refused."""
    old = plan_mod.read(plan.storage, plan.name) if not storage.is_uri(plan.folder) else None
    if old is None:
        return
    if redact(old.tracking_uri) != redact(plan.tracking_uri):
        raise StudyError(
            f"the folder {plan.folder} holds the study {plan.name!r} recorded in "
            f"{redact(old.tracking_uri)}: resume that one with --tracking-uri "
            f"{redact(old.tracking_uri)}, or choose another --name or --storage"
        )
    for tune_dir in Path(plan.folder).glob("tune-*"):
        shutil.rmtree(tune_dir, ignore_errors=True)
