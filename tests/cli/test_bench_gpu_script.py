"""bench/gpu.sh, the one-call GPU benchmark, end to end in its --small mode on the CPU: a
GPU machine is lent rarely and briefly, so the script must not have rotted when one is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, env

pytestmark = pytest.mark.slow


def test_gpu_bench_runs_end_to_end_and_writes_every_figure(tmp_path):
    out = tmp_path / "out"
    e = {**env(), "PYTHON": sys.executable, "OUT": str(out)}
    e.pop("PYTHONPATH", None)
    proc = subprocess.run(
        ["bash", "bench/gpu.sh", "--small", "--work", str(tmp_path / "w")],
        cwd=REPO,
        env=e,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((out / "gpu.json").read_text())
    assert res["small"] is True and res["device"] == "CPU"
    for key in (
        "decode_images_per_s",
        "ceiling_images_per_s",
        "backbone_images_per_s",
        "extract_images_per_s",
        "vae_plus_classifier_s",
        "trials_per_hour",
    ):
        assert res[key] > 0, key
    assert res["backbone_vs_ceiling"] == res["backbone_images_per_s"] / res["ceiling_images_per_s"]
    assert res["study_trials"] > 0
    assert "backbone stage with data loading" in (out / "gpu.log").read_text()
    assert "complete; 4 trials finished" in (out / "study.log").read_text()
    assert not os.path.exists(REPO / "gpu-out")  # results went to $OUT
