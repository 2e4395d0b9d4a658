"""A trial uses the dataset fingerprint its driver computed once for the session only when
it reads that dataset the way the driver did (the same root, the layout detected); a trial
that names another data root or a layout computes its own (study/driver/trainable.py)."""

from __future__ import annotations

from study.driver.trainable import TrialContext, _session_fingerprint, trial_config


def context(**base) -> TrialContext:
    return TrialContext(
        base={"data": "/data/fs14", **base},
        preset="tiny",
        study="s",
        tracking_uri="sqlite:///x.db",
        experiment_id="1",
        parent_run_id="p",
        cache_dir=None,
        objectives=["val_acc_h"],
        report_epochs=False,
        max_failures=0,
        marker=None,
        git={},
        data_fingerprint="f" * 64,
    )


def test_a_trial_on_the_sessions_data_uses_its_fingerprint():
    ctx = context()
    cfg = trial_config({"key": "#0", "point": {"latent_dim": 8}}, ctx)
    assert _session_fingerprint(cfg, ctx) == "f" * 64
    assert _session_fingerprint({**cfg, "layout": "auto"}, ctx) == "f" * 64


def test_a_trial_on_other_data_or_a_named_layout_computes_its_own():
    ctx = context()
    cfg = trial_config({"key": "#0", "point": {"data": "/data/other"}}, ctx)
    assert _session_fingerprint(cfg, ctx) is None
    named = context(layout="folders")
    cfg = trial_config({"key": "#0", "point": {}}, named)
    assert _session_fingerprint(cfg, named) is None
