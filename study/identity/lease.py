"""A study's lease: which one process may write the study now, by a number that only grows.

Holding a study means holding its lease in the study's tracking store, taken by `run`,
`resume` and `discard` on any machine (docs/failures.md#one-writer-per-study). The lease
is a series of registered models, `fsvae-study-lease-<hash of the name>-<epoch>`. MLflow
offers no compare-and-set on tags; its one atomic operation is that creating a registered
model whose name exists fails, on every backend (SQLite, PostgreSQL, an `mlflow server`).
So each epoch is made by exactly one process: whoever takes the study makes the epoch
after the latest one, which it may do only when the latest one's holder released it or is
dead. Every takeover takes the next number.

The holder checks that the latest epoch is still its own before every write that changes
the study, and stops at the first check that finds a later one (`Superseded`): a fencing
token (M. Kleppmann, "How to do distributed locking", 2016; Chubby's sequencers), kept by
the writers because MLflow cannot check it. The window this leaves: a write that follows
its check by one round trip of the store can land after a takeover that came in between;
nothing after it does.

"Dead" never compares one machine's clock with another's. The holder counts heartbeats
(a tag on its epoch's model, every lease/4 seconds); a process that wants the study
watches the count on its own monotonic clock and takes the study once the count has not
moved for the holder's lease (as Kubernetes' leader election keeps its observed time). On
the same machine and in the same pid namespace the holder's process is looked at instead:
dead at once, or alive. A holder that ends releases its lease, and the next takes it at
once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from study import processes
from study.errors import StudyError

PREFIX = "fsvae-study-lease-"
DEFAULT_LEASE_S = 60.0
LEASE_ENV = "FSVAE_LEASE_S"
HOLDER, BEAT, RELEASED, PARENT = (
    "fsvae.lease.holder",
    "fsvae.lease.beat",
    "fsvae.lease.released",
    "fsvae.lease.parent",
)


def lease_seconds() -> float:
    """How long a holder whose heartbeat stopped keeps its study: FSVAE_LEASE_S, else 60."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 2.0 <= value <= 3600.0:
        raise StudyError(
            f"{LEASE_ENV}={raw!r}: expected seconds between 2 and 3600 (how long "
            f"a driver whose heartbeat stopped keeps its study; default "
            f"{DEFAULT_LEASE_S:.0f})"
        )
    return value


def clock() -> float:
    """Seconds that keep counting while the machine sleeps (a laptop's lid)."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.monotonic()


def client_for(tracking_uri: str):
    """A client whose model registry is the tracking store itself, whatever
    MLFLOW_REGISTRY_URI says: the lease must live beside the runs it guards."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def _prefix(study: str) -> str:
    return f"{PREFIX}{hashlib.sha256(study.encode()).hexdigest()[:20]}-"


def model_name(study: str, epoch: int) -> str:
    return f"{_prefix(study)}{epoch:09d}"


# -- who is this process -----------------------------------------------------------------


def this_process(role: str) -> dict:
    """This process (study/processes.py), its role and its lease's length."""
    return {**processes.identify(), "role": role, "lease_s": lease_seconds()}


# -- the store's side ----------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRef:
    """One holder's epoch of one study's lease: what a trial's worker is handed to check."""

    tracking_uri: str
    study: str
    epoch: int
    token: str  # this holder's own, so that an epoch deleted and made again is not its


@dataclass
class Holder:
    """The latest epoch of a study's lease, as the store has it."""

    epoch: int
    token: str
    info: dict
    beat: str
    released: bool
    parent: str | None

    def describe(self) -> str:
        """ "`resume` on host gpu-2, pid 4242 (lease 7)"."""
        i = self.info
        return (
            f"`{i.get('role', '?')}` on host {i.get('host', '?')}, pid {i.get('pid', '?')} "
            f"(lease {self.epoch})"
        )


def latest(client, study: str) -> Holder | None:
    """The latest epoch of `study`'s lease, in one round trip; None when it has none."""
    prefix = _prefix(study)
    found = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"], max_results=1
    )
    if not found:
        return None
    model = found[0]
    tags = dict(model.tags or {})
    try:
        info = json.loads(tags.get(HOLDER, "{}"))
        epoch = int(model.name[len(prefix) :])
    except ValueError:
        info, epoch = {}, 0
    return Holder(
        epoch=epoch,
        token=str(info.get("token", "")),
        info=info,
        beat=tags.get(BEAT, ""),
        released=tags.get(RELEASED) == "1",
        parent=tags.get(PARENT),
    )


class Superseded(StudyError):
    """This process no longer holds its study: another one took it (or it was discarded).
    Raised by the first check after the takeover; nothing more is written."""

    exit_code = 4

    @classmethod
    def of(cls, ref: LeaseRef, role: str, holder: Holder | None) -> Superseded:
        if holder is None:
            by = "its lease is gone from the tracking store (its registered models were deleted)"
        elif holder.info.get("role") == "discard":
            by = f"it was discarded by {holder.describe()}"
        else:
            by = f"{holder.describe()} took it over"
        return cls(
            f"study {ref.study!r}: this {role} (lease {ref.epoch}) no longer holds the "
            f"study: {by}; it stopped before writing anything more"
        )


class Fence:
    """Checks that `ref` is still the study's latest lease epoch, before a write."""

    def __init__(self, ref: LeaseRef, role: str, client=None):
        self.ref, self.role = ref, role
        self.client = client if client is not None else client_for(ref.tracking_uri)
        self.lost: Superseded | None = None

    def check(self) -> None:
        """One round trip; raises Superseded (every time, from the first) once the study
        has a later epoch than this one, or its own epoch is not this holder's."""
        if self.lost is not None:
            raise self.lost
        now = latest(self.client, self.ref.study)
        if now is None or (now.epoch, now.token) != (self.ref.epoch, self.ref.token):
            self.lost = Superseded.of(self.ref, self.role, now)
            raise self.lost

    def holds(self) -> bool:
        """check() as a yes or no; other errors (the store away) are raised."""
        try:
            self.check()
        except Superseded:
            return False
        return True


_FENCES: dict[LeaseRef, Fence] = {}


def fence_for(ref: LeaseRef) -> Fence:
    """This process's fence of `ref` (a trial's worker keeps one per lease it served)."""
    if ref not in _FENCES:
        _FENCES[ref] = Fence(ref, "trial's worker")
    return _FENCES[ref]


class Lease(Fence):
    """The lease this process holds: checked before its writes, beaten by Heartbeat,
    released when its work ends."""

    def __init__(self, ref: LeaseRef, role: str, client, info: dict):
        super().__init__(ref, "driver" if role in ("run", "resume") else role, client)
        self.info, self.beats = info, 0
        self.name = model_name(ref.study, ref.epoch)

    def beat(self) -> None:
        """One heartbeat on this holder's own epoch: harmless once superseded."""
        self.beats += 1
        self.client.set_registered_model_tag(self.name, BEAT, str(self.beats))

    def name_parent(self, parent_id: str) -> None:
        self.client.set_registered_model_tag(self.name, PARENT, parent_id)

    def release(self) -> None:
        """Frees the study at once for the next holder, if this one still holds it. An
        error (the store away) leaves it to lapse."""
        try:
            if self.holds():
                self.client.set_registered_model_tag(self.name, RELEASED, "1")
        except Exception:
            pass

    def _prune(self) -> None:
        """Earlier epochs are history nobody reads (the latest decides): deleted, so that
        the MLflow UI's model list keeps one entry per study."""
        try:
            models = self.client.search_registered_models(
                filter_string=f"name LIKE '{_prefix(self.ref.study)}%'", max_results=1000
            )
            for m in models:
                if m.name < self.name:
                    self.client.delete_registered_model(m.name)
        except Exception:  # another holder pruning too, or a server that refuses deletes
            pass


class Busy(StudyError):
    """The study is held by a live process."""


def acquire(
    tracking_uri: str, study: str, role: str, say: Callable[[str], None] = print, client=None
) -> Lease:
    """Takes the next epoch of `study`'s lease for this process (`role`: run, resume or
    discard). Raises Busy when its holder is alive; waits, saying so, while it cannot yet
    tell (the holder is on another machine or in another container and did not release
    it): at most the holder's lease, then takes it."""
    from mlflow.exceptions import MlflowException

    client = client if client is not None else client_for(tracking_uri)
    info = this_process(role)
    token = uuid.uuid4().hex
    info["token"] = token
    watch = _Watch()
    deadline = clock() + 2 * max(lease_seconds(), DEFAULT_LEASE_S) + 60
    said = False
    while True:
        holder = latest(client, study)
        if holder is not None and holder.token == token:  # made by a call that seemed to fail
            return _held(client, tracking_uri, study, holder.epoch, token, role, info)
        if holder is not None and not holder.released:
            state = watch.judge(holder)
            if state == "alive":
                raise Busy(busy_message(study, holder))
            if state == "unknown":
                if clock() > deadline:
                    raise StudyError(
                        f"study {study!r}: could not tell within "
                        f"{deadline - watch.since:.0f} s whether its holder "
                        f"({holder.describe()}) is alive"
                    )
                if not said:
                    said = True
                    say(
                        f"study {study!r} is held by {holder.describe()}, which did not "
                        f"release it and is on another machine or in another container: "
                        f"waiting up to {watch.lease(holder):.0f} s for its heartbeat to show "
                        f"whether it is alive"
                    )
                time.sleep(min(1.0, watch.lease(holder) / 8))
                continue
        epoch = 1 if holder is None else holder.epoch + 1
        try:
            client.create_registered_model(
                model_name(study, epoch),
                tags={HOLDER: json.dumps(info), BEAT: "0"},
                description=f"fsvae-study: lease {epoch} of the study {study!r} (who may write "
                f"it now: docs/failures.md#one-writer-per-study); do not delete "
                f"while the study runs",
            )
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS" and clock() > deadline:
                from study.secrets import redact, redact_text

                raise StudyError(
                    f"study {study!r}: could not take its lease in "
                    f"{redact(tracking_uri)}: {e.error_code}: "
                    f"{redact_text(e.message)[:300]}"
                ) from None
            # Taken by another claimant (judged next round), or a contended create that the
            # store reported otherwise (seen on SQLite: RESOURCE_DOES_NOT_EXIST): again.
            time.sleep(0.05 if e.error_code == "RESOURCE_ALREADY_EXISTS" else 0.3)
            continue
        return _held(client, tracking_uri, study, epoch, token, role, info)


def _held(client, tracking_uri, study, epoch, token, role, info) -> Lease:
    lease = Lease(LeaseRef(tracking_uri, study, epoch, token), role, client, info)
    lease._prune()
    return lease


def busy_message(study: str, holder: Holder) -> str:
    if holder.info.get("role") == "discard":
        return f"study {study!r} is being discarded now by {holder.describe()}"
    return (
        f"study {study!r} is being run by another driver now ({holder.describe()}); wait "
        f"for it to end, or stop it and resume"
    )


def peek(tracking_uri: str, study: str) -> Holder | None:
    """The study's holder when it is visibly alive from here (same machine and pid
    namespace, its process running), without waiting; else None."""
    holder = latest(client_for(tracking_uri), study)
    if holder is None or holder.released or not processes.same_namespace(holder.info):
        return None
    return holder if processes.running(holder.info) else None


class _Watch:
    """Whether a holder is alive, by its process when it can be seen from here, else by
    its heartbeat count watched on this machine's own clock."""

    def __init__(self) -> None:
        self.seen: tuple | None = None  # (epoch, token, beat, since)
        self.since = clock()

    @staticmethod
    def lease(holder: Holder) -> float:
        try:
            return float(holder.info.get("lease_s") or DEFAULT_LEASE_S)
        except (TypeError, ValueError):
            return DEFAULT_LEASE_S

    def judge(self, holder: Holder) -> str:
        """ "alive", "dead" or "unknown" (not watched long enough yet)."""
        if processes.same_namespace(holder.info):
            return "alive" if processes.running(holder.info) else "dead"
        now = clock()
        if self.seen is None or self.seen[:2] != (holder.epoch, holder.token):
            self.seen = (holder.epoch, holder.token, holder.beat, now)
            return "unknown"
        if holder.beat != self.seen[2]:
            return "alive"
        return "dead" if now - self.seen[3] >= self.lease(holder) else "unknown"
