"""A study's plan: what `run` was asked, made once by planning (study/plan/making.py), read by
every later stage, and kept as `<storage>/<name>/study.json` and on the study's parent run
(docs/failures.md), so that `resume` needs nothing else.

No MLflow or Ray import here: planning, and failing fast on a bad argument, stays quick.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import search_spaces
from fsvae import data as data_mod
from study.errors import StudyError
from study.plan import storage as locations
from study.secrets import redact

DEFAULT_STORAGE = "fsvae-studies"
FORMAT = 2  # study.json written by this version: trial keys, Optuna store, sessions
# What a resumed study must share with the study it continues; everything else (where its
# files live, which machine drives it) may change.
SAME_ON_RESUME = ("space", "preset", "base")
DATA_RULE = (
    "the data is compared by its split lists and each file's size, not by its path "
    "(a copy on another machine or mount point matches) or file times"
)


@dataclass
class Plan:
    """Everything a study needs, checked (study/planning.make_plan). URLs may carry a
    password in memory; study.json and the record keep them without (`recorded`)."""

    name: str
    storage: str  # an absolute local path or a URI: the study's folder is <storage>/<name>
    space: dict  # the search space as resolved (search_spaces.Space.to_dict)
    space_path: str
    space_text: str  # the space file as given
    data: str  # the dataset's root, absolute
    preset: str
    base: dict  # what every trial shares: the space's fixed keys, --set, and data
    tracking_uri: str
    optuna_storage: str | None = None  # a search's Optuna store; None for a grid
    cache_dir: str | None = None  # None: --no-cache
    address: str | None = None  # a Ray cluster to join; None: a local Ray
    cpus_per_trial: float | None = None  # None: the space's resources decide
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    max_failures: int = 0
    infra_retries: int = 2
    asha: bool = False
    log_model: bool = False
    tags: dict = field(default_factory=dict)  # for the parent run (a confirmation's search)
    command: str = ""  # the command line, without passwords
    created: str = ""
    sessions: int = 0  # sessions run so far
    data_content: str | None = None  # fsvae.data.content_fingerprint; None: before it existed
    parent_run_id: str | None = None  # set when the study is claimed (study/identity/claim.py)
    experiment_id: str | None = None
    format: int = FORMAT

    @property
    def folder(self) -> str:
        """The study's own folder, <storage>/<name>."""
        return locations.join(self.storage, self.name)

    def search_space(self) -> search_spaces.Space:
        return search_spaces.parse(self.space, self.space_path, self.space_text)

    def replace(self, **changes: Any) -> Plan:
        return dataclasses.replace(self, **changes)

    def claimed_ids(self) -> tuple[str, str]:
        """(experiment id, parent run id): both set once the study is claimed
        (study/identity/claim.py), which every session's work comes after."""
        if self.experiment_id is None or self.parent_run_id is None:
            raise StudyError(f"study {self.name!r} is not claimed: no experiment or parent run")
        return self.experiment_id, self.parent_run_id

    def optuna_store(self) -> str:
        """A search's Optuna store: planning gives every search one (study/plan/making.py)."""
        if self.optuna_storage is None:
            raise StudyError(f"study {self.name!r} has no Optuna store: it is not a search")
        return self.optuna_storage

    def recorded(self) -> dict:
        """The plan as study.json and the parent run keep it: URLs without passwords (they
        come back from ~/.pgpass, PGPASSWORD or MLFLOW_TRACKING_PASSWORD)."""
        out = dataclasses.asdict(self)
        for key in ("tracking_uri", "optuna_storage", "storage"):
            out[key] = redact(out[key])
        return out

    def to_json(self) -> str:
        return json.dumps(self.recorded(), indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Plan:
        """A plan read back; StudyError naming `where` if it is not one this version
        resumes. Keys a later version added are ignored; missing optional ones default."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StudyError(
                f"{where} is not valid JSON ({e}); it records how the study was "
                f"started, so restore it from a backup, or start again under "
                f"another --name (the stage cache keeps what was already "
                f"computed)"
            ) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise StudyError(
                f"{where} was written by an earlier version of fsvae-study, "
                f"which recorded trials differently; its MLflow runs stay "
                f"readable by `fsvae-study table`, but it cannot be resumed: "
                f"start it again under another --name (the stage cache keeps "
                f"what was already computed)"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as e:
            raise StudyError(f"{where} lacks what a study needs ({e})") from None


def study_dir(plan: Plan) -> str:
    return plan.folder


def read(location: str, name: str) -> Plan | None:
    """The plan in the study.json of study `name` under a storage, or None."""
    where = locations.join(location, name, "study.json")
    text = locations.read_text(where)
    return None if text is None else Plan.from_json(text, redact(where))


def write(plan: Plan) -> None:
    """study.json (whole, atomically) and, once, the space file as given."""
    locations.write_text(locations.join(plan.folder, "study.json"), plan.to_json())
    if locations.read_text(locations.join(plan.folder, "space.yaml")) is None:
        locations.write_text(locations.join(plan.folder, "space.yaml"), plan.space_text)


def forget(plan: Plan) -> None:
    """Removes a new study's study.json and space.yaml, so that the same command can be run
    again after a study that never started."""
    for name in ("study.json", "space.yaml"):
        locations.remove(locations.join(plan.folder, name))


# -- a study continued: the same study, maybe elsewhere -----------------------------------


def differences(stored: Plan, new: Plan, accept_changed_data: bool = False) -> list[str]:
    """What `new` (a `run --resume`) changes that a resume may not, as phrases for the
    error; [] when it is the same study."""
    out = []
    for key in SAME_ON_RESUME:
        a, b = getattr(stored, key), getattr(new, key)
        if key == "base":  # the data's path is compared below, by content
            a, b = ({k: v for k, v in x.items() if k != "data"} for x in (a, b))
        if a != b:
            out.append(
                f"another {key} ({'--set overrides' if key == 'base' else key}: "
                f"started with {_short(a)}, now {_short(b)})"
            )
    if not accept_changed_data and not same_data(stored, new):
        out.append(
            f"other data ({new.data} against {stored.data}: {DATA_RULE}; if the "
            f"change is intended, pass --accept-changed-data)"
        )
    return out


def same_data(stored: Plan, new: Plan) -> bool:
    if stored.data_content and new.data_content:
        return stored.data_content == new.data_content
    return stored.data == new.data  # a study.json from before content fingerprints


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def with_data(plan: Plan, data: str) -> Plan:
    """The plan reading its data from `data` (checked, as planning checks it)."""
    root = Path(data).expanduser().resolve()
    data_mod.detect_layout(root)
    return plan.replace(
        data=str(root),
        base={**plan.base, "data": str(root)},
        data_content=data_mod.content_fingerprint(root),
    )


def default_optuna_storage(location: str) -> str:
    """A search's Optuna store unless given: beside a local storage, or on the driver's own
    disk when the storage is an object store (SQLite needs a POSIX filesystem)."""
    import os

    if not locations.is_uri(location):
        return f"sqlite:///{Path(location) / 'optuna.db'}"
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{home / 'fsvae-study' / 'optuna.db'}"


def relocate(
    plan: Plan, location: str, tracking_uri: str, optuna_storage: str | None = None
) -> Plan:
    """The plan of a study continued from another folder or machine: its folder, default
    cache and default Optuna store move to `location`, the tracking URI is the one it was
    found at, and a given Optuna store replaces the recorded one."""
    from study.plan.storage import database_url

    old = plan.storage
    plan = plan.replace(storage=location, tracking_uri=tracking_uri)
    if old != location:
        if (
            plan.cache_dir
            and not locations.is_uri(location)
            and plan.cache_dir == str(Path(old) / "cache")
        ):
            plan.cache_dir = str(Path(location) / "cache")
        if plan.optuna_storage == default_optuna_storage(old):
            plan.optuna_storage = default_optuna_storage(location)
    if optuna_storage:
        plan.optuna_storage = database_url(optuna_storage)
    return plan
