"""What a run records about the code and the data that made it: the checkout's commit, the
libraries' versions in the process that computed it, the dataset as an MLflow input
(docs/mlflow.md)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag

from study.record.schema import GIT_DIRTY, VERSION


def git_state() -> dict[str, str]:
    """The project checkout's commit and whether its tree had changes, as MLflow's own tag
    (`mlflow.source.git.commit`, which its UI shows) and fsvae.git_dirty; {} outside git."""
    import fsvae

    root = str(Path(fsvae.__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if commit.returncode != 0 or status.returncode != 0:
        return {}
    return {
        "mlflow.source.git.commit": commit.stdout.strip(),
        GIT_DIRTY: "true" if status.stdout.strip() else "false",
    }


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
    tags[VERSION + "torchvision"] = vision.get("__version__", tags[VERSION + "torchvision"])
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
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else None
        )
        value = getattr(node, "value", None)
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            found[target.id] = value.value
    return found


def dataset_input(data: str, fingerprint: str, context: str) -> DatasetInput:
    """The dataset as an MLflow input: its folder as the source, the data fingerprint (of
    its file lists and files' sizes and times, fsvae.data.fingerprint) as the digest."""
    source = json.dumps({"uri": data})
    dataset = Dataset(
        name=Path(data).name or data, digest=fingerprint[:36], source_type="local", source=source
    )
    return DatasetInput(dataset=dataset, tags=[InputTag("mlflow.data.context", context)])


def git_version() -> str:
    """The project's version and `git describe --dirty` of its checkout, where there is one."""
    import fsvae

    root = Path(fsvae.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{fsvae.__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return fsvae.__version__
