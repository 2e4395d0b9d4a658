"""The Ray cluster a study runs on: start a local one or join one, size the trials to it,
and check that every node sees the study's storage, cache and data.

A local Ray keeps Ray's token authentication on (Ray's default for `ray.init()`): its
processes listen on every interface, so without a token anyone who can reach the machine
could join as a driver and run code. The token is `~/.ray/auth_token`, readable by its
owner only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import search_spaces
from study.errors import StudyError
from study.plan import storage
from study.plan.storage import SERVER_SETUP
from study.secrets import redact

if TYPE_CHECKING:
    from ray._private.worker import RayContext

    from study.plan.plan import Plan

DEFAULT_GPU_FRACTION = 0.25
MARKER = ".fsvae-shared-check.json"


# Filesystems whose locking SQLite cannot rely on (https://www.sqlite.org/faq.html#q5):
# several processes writing one SQLite file there can corrupt it.
class SharedStorageError(StudyError):
    """A node cannot see a path that every node must share."""


def init_ray(address: str | None, error_log: Path) -> tuple[str, Path | None]:
    """Starts a local Ray or joins `address`; returns a line saying which, for the console,
    and a local Ray's session folder (its logs; removed once a study completes). Messages
    the cluster publishes to its drivers go to `error_log` (see _errors_to_file)."""
    import ray

    import fsvae

    # MLflow prints "View run ... at http://..." when a run ends on a server: one line per
    # trial that the console does not need (the summary says where the runs are).
    quiet = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    os.environ.update(quiet)  # the driver, and the workers of a local Ray (they inherit it)
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    if address:
        # Workers on other nodes get this code from the driver; their Python needs the
        # packages of pyproject.toml (see docs/cluster.md).
        kwargs["runtime_env"] = {
            "py_modules": [fsvae, str(Path(__file__).resolve().parents[1]), search_spaces],
            "env_vars": quiet,
        }
        try:
            # ray.init is annotated with the base class; a Ray address gives a RayContext.
            ctx = cast("RayContext", ray.init(address=address, **kwargs))
        except Exception as e:
            raise StudyError(
                f"cannot join the Ray cluster at {address}: "
                f"{type(e).__name__}: {_first_line(e)}" + _auth_hint(_chain(e))
            ) from None
        _errors_to_file(error_log)
        return f"Ray: joined the cluster at {ctx.address_info['gcs_address']}", None
    # A new local Ray starts one idle worker per CPU for its first driver
    # (prestart_worker_first_driver in Ray's src/ray/common/ray_config_def.h), and none
    # ever hosts a trial: Tune gives its trial actors a runtime_env (env_vars, in
    # ray/tune/execution/class_cache.py), so each gets a worker of its own. Off, unless the
    # environment says otherwise: the workers a study uses start as it needs them.
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    # Token authentication stays on (Ray's default for a new local cluster). Ray warns
    # about it on every start; our own line below says whether it is on.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    try:
        # "local": a new Ray of the study's own, never one that `ray start` left running on
        # this machine (which plain ray.init() would join, even when it has died).
        ctx = cast("RayContext", ray.init(address="local", **kwargs))
    except Exception as e:
        raise StudyError(
            f"cannot start a local Ray: {type(e).__name__}: {e}" + _ray_tmp_hint(str(e))
        ) from None
    _errors_to_file(error_log)
    token = Path.home() / ".ray" / "auth_token"
    auth = os.environ.get("RAY_AUTH_MODE", "token").lower() != "disabled"
    if auth and token.is_file():
        token.chmod(0o600)
    session_dir = ctx.address_info.get("session_dir", "")
    if session_dir is None:  # Ray's annotation allows it; a local Ray always has one
        raise StudyError("the local Ray started without a session folder (its logs)")
    session = Path(session_dir)
    return (
        f"Ray: local, at {ctx.address_info['gcs_address']}, token authentication "
        f"{'on' if auth else 'OFF (RAY_AUTH_MODE=disabled)'}; its logs (kept unless the "
        f"study completes): {session / 'logs'}"
    ), session


def _chain(e: BaseException) -> str:
    """The messages of an exception and of those it was raised from."""
    texts, seen = [], set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        texts.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    return "\n".join(texts)


def _first_line(e: Exception) -> str:
    return next((ln for ln in str(e).splitlines() if ln.strip()), "")[:300]


def _auth_hint(message: str) -> str:
    """Ray sends its token only in token mode, which it turns on by itself for a new local
    cluster but not for a driver that joins by address (docs/cluster.md)."""
    if "InvalidAuthToken" in message or "uthentication" in message:
        mode = os.environ.get("RAY_AUTH_MODE", "unset")
        return (
            f" (the cluster uses Ray's token authentication and this driver's "
            f"RAY_AUTH_MODE is {mode}: set RAY_AUTH_MODE=token, with the cluster's token "
            f"in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
        )
    return " (is `ray start --head` running there?)"


def _errors_to_file(path: Path) -> None:
    """Ray's driver prints every error message the cluster publishes to stdout, whatever
    log_to_driver says: a lost node's raylet sends its last twenty log lines, `[state-dump]`
    and all, several times. The study's console says what happened to its trials in its own
    lines; Ray's messages go to `path`, with one console line per distinct message saying
    where. (Ray calls ray._private.worker.print_to_stdstream for them, a private function
    with no public hook: replaced here for the session, put back by restore_ray_output();
    other output is passed on unchanged.)"""
    import ray._private.worker as ray_worker

    original = _RAY_PRINT.setdefault("original", ray_worker.print_to_stdstream)
    shown: set[str] = set()

    def to_file(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            return original(data, ignore_prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.writelines(line + "\n" for line in data.get("lines", []))
        first = next((ln.strip() for ln in data.get("lines", []) if ln.strip()), "")
        head = first.split(". ")[0][:120]
        if head and head not in shown:
            shown.add(head)
            print(f"Ray: {head} (Ray's message in {path})", flush=True)

    ray_worker.print_to_stdstream = to_file


_RAY_PRINT: dict = {}  # Ray's own print_to_stdstream while _errors_to_file's replaces it


def restore_ray_output() -> None:
    """Ray's print_to_stdstream back as it was, once the session's Ray is shut down."""
    if "original" in _RAY_PRINT:
        import ray._private.worker as ray_worker

        ray_worker.print_to_stdstream = _RAY_PRINT.pop("original")


def _ray_tmp_hint(message: str) -> str:
    if "AF_UNIX path length" not in message:
        return ""
    from ray._common.utils import get_default_system_temp_dir

    return (
        f" (Ray keeps its sockets under $RAY_TMPDIR, else $TMPDIR: now "
        f"{get_default_system_temp_dir()}, too long a path for a socket; set RAY_TMPDIR "
        f"to a short folder, e.g. RAY_TMPDIR=/tmp)"
    )


def trial_resources(plan: Plan, space: search_spaces.Space) -> tuple[dict, int]:
    """Each trial's resources and how many trials run at once: as many as fit on the
    cluster's nodes, each node holding whole trials (a trial runs on one node). A trial
    that fits no node is refused before any starts, with the numbers (and, in a Slurm
    job, what Slurm gave: its nodes' Ray has that and no more, cluster/slurm.sbatch)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")] or [ray.cluster_resources()]
    gpus_total = sum(n.get("GPU", 0) for n in nodes)
    cpu = (
        plan.cpus_per_trial if plan.cpus_per_trial is not None else space.resources.get("cpu", 1.0)
    )
    gpu = (
        plan.gpus_per_trial
        if plan.gpus_per_trial is not None
        else space.resources.get("gpu", DEFAULT_GPU_FRACTION if gpus_total else 0.0)
    )
    if gpu > 0 and gpus_total == 0:
        print(
            f"no GPU in the Ray cluster: trials run on the CPU (asked for {gpu} GPU each)",
            flush=True,
        )
        gpu = 0.0
    if gpu > 1 and not float(gpu).is_integer():
        raise StudyError(f"{gpu} GPUs per trial: fractions above 1 must be whole numbers")
    per_node = [_fits(n, cpu, gpu) for n in nodes]
    if not any(per_node):
        largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)))
        raise StudyError(
            f"a trial asks {cpu:g} CPU(s) and {gpu:g} GPU(s), but no node of the cluster has "
            f"that: the largest has {largest.get('CPU', 0):g} CPU(s) and "
            f"{largest.get('GPU', 0):g} GPU(s) ({len(nodes)} node(s))"
            + _slurm_hint()
            + "; ask for less with --cpus-per-trial / --gpus-per-trial"
        )
    concurrency = max(1, sum(per_node))
    if plan.max_concurrent:
        concurrency = min(concurrency, plan.max_concurrent)
    res = {"cpu": cpu}
    if gpu > 0:
        res["gpu"] = gpu
    return res, concurrency


def _fits(node: dict, cpu: float, gpu: float) -> int:
    """How many trials of (cpu, gpu) one node holds."""
    limits = [math.floor(node.get("CPU", 0) / cpu + 1e-9) if cpu > 0 else 10_000]
    if gpu > 0:
        limits.append(math.floor(node.get("GPU", 0) / gpu + 1e-9))
    return max(0, min(limits))


def _slurm_hint() -> str:
    """What Slurm gave this job, where the driver runs in one."""
    if not os.environ.get("SLURM_JOB_ID"):
        return ""
    gave = ", ".join(
        f"{k}={os.environ[k]}"
        for k in (
            "SLURM_JOB_NUM_NODES",
            "SLURM_CPUS_PER_TASK",
            "SLURM_GPUS_ON_NODE",
            "CUDA_VISIBLE_DEVICES",
        )
        if os.environ.get(k)
    )
    return (
        f"; this Slurm job ({os.environ['SLURM_JOB_ID']}) was given {gave or 'no more'}: "
        f"ask sbatch for more (--cpus-per-task, --gpus-per-node)"
    )


# -- shared storage ----------------------------------------------------------------------


def write_markers(plan: Plan, study_dir: str) -> dict:
    """Writes a fresh token where every node must read it (the study's folder, the cache)
    and returns what a node checks: {"files": [[location, token], ...], "data": path}."""
    token = uuid.uuid4().hex
    text = json.dumps({"token": token, "study": plan.name, "host": socket.gethostname()})
    files = [storage.join(study_dir, MARKER)]
    if plan.cache_dir:
        files.append(str(Path(plan.cache_dir) / f".fsvae-shared-check-{plan.name}.json"))
    for location in files:
        storage.write_text(location, text)
    stores = (
        [plan.tracking_uri[len("sqlite:///") :]]
        if plan.tracking_uri.startswith("sqlite:///")
        else []
    )
    return {"files": [[f, token] for f in files], "data": plan.data, "stores": stores}


def check_shared(marker: dict) -> None:
    """On the node this runs on: every marker reads back with its token, and the data folder
    exists. SharedStorageError naming the node and the path otherwise."""
    for location, token in marker["files"]:
        text = storage.read_text(location)
        try:
            found = json.loads(text).get("token") if text else None
        except ValueError:
            found = None
        if found != token:
            what = "the study's --storage" if MARKER in location else "the stage cache"
            raise SharedStorageError(
                f"{_node()} cannot see {redact(location)}, which the driver just wrote "
                f"({'missing' if text is None else 'another copy'} there): {what} must be "
                f"one filesystem shared by every node (an NFS/EFS mount at the same path, "
                f"or s3:// for --storage); see docs/cluster.md#2-shared-storage"
            )
    if not Path(marker["data"]).is_dir():
        raise SharedStorageError(
            f"{_node()} has no dataset at {marker['data']}: the data "
            f"must be at the same path on every node"
        )
    for db in marker.get("stores", []):
        if not Path(db).is_file():
            raise SharedStorageError(
                f"{_node()} cannot see the MLflow store {db}, a SQLite "
                f"file on the driver's disk; {SERVER_SETUP}"
            )


def probe_nodes(marker: dict) -> int:
    """Runs check_shared on every alive node before any trial starts; returns the number of
    nodes checked. A node that joins later is checked by its first trial (trainable.py)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    task = ray.remote(num_cpus=0, max_retries=0)(_probe)
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(marker)
        for n in nodes
    ]
    try:
        errors = [e for e in ray.get(refs, timeout=300) if e]
    except ray.exceptions.GetTimeoutError:
        raise StudyError(
            "checking that every node sees the study's storage took over 300 s: "
            "a node does not run tasks (see `ray status`)"
        ) from None
    if errors:
        raise SharedStorageError(
            errors[0] + (f" ({len(errors) - 1} more node(s) likewise)" if len(errors) > 1 else "")
        )
    return len(nodes)


def _probe(marker: dict) -> str | None:
    try:
        check_shared(marker)
    except SharedStorageError as e:
        return str(e)
    return None


def _node() -> str:
    """'node 10.0.0.5 (host gpu-2, Ray node 1a2b3c4d)' for the process this runs in."""
    host = socket.gethostname()
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            ip = ray.util.get_node_ip_address()
            return f"node {ip} (host {host}, Ray node {ctx.get_node_id()[:8]})"
    except Exception:  # not in a Ray process
        pass
    return f"host {host}"
