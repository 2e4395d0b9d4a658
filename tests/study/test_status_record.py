"""`fsvae-study status`'s reading (study/watch/status.py) on hand-made records in a real
SQLite store: trials counted by how they ended, the time left from finished trials, the
cost summed over trial runs, and the driver judged alive or not without waiting. Whole
studies, on SQLite, an `mlflow server` and PostgreSQL: tests/study/test_status.py."""

from __future__ import annotations

import json
import os

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from study import processes
from study.errors import StudyError
from study.identity.lease import Holder
from study.record import schema
from study.watch import render, status

NOW = 1_800_000_000.0  # Unix s: "now" for every reading here


class Record:
    """One hand-made study `name`: its parent run (num_trials, a driver elsewhere whose
    last heartbeat was `beat_age` s ago), then trial runs made by `trial`."""

    def __init__(self, tmp, name: str = "s", total: int = 5, beat_age: float = 5.0):
        self.uri = f"sqlite:///{tmp / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment(name, (tmp / "art").as_uri())
        driver = {"host": "gpu-7", "pid": 4242, "role": "run", "lease": 3, "lease_s": 60}
        self.parent = self.client.create_run(
            self.exp,
            start_time=_ms(NOW - 600),
            tags={
                schema.ROLE: "study",
                schema.SPACE_KIND: "grid",
                schema.DRIVER: json.dumps(driver),
                schema.HEARTBEAT: f"{NOW - beat_age:.0f}",
            },
        ).info.run_id
        self.client.log_param(self.parent, "num_trials", total)
        self.n = 0

    def trial(
        self,
        status: str,
        began: float,
        ended: float | None = None,
        cost: dict | None = None,
        tags: dict | None = None,
    ) -> str:
        """A trial run started `began` s before NOW, ended `ended` s before it (None:
        still RUNNING), with `cost` metrics (cost_<k>)."""
        self.n += 1
        rid = self.client.create_run(
            self.exp,
            start_time=_ms(NOW - began),
            tags={
                schema.PARENT: self.parent,
                schema.ROLE: "trial",
                schema.TRIAL_KEY: f"grid:{self.n:016x}",
                **(tags or {}),
            },
        ).info.run_id
        self.client.log_batch(
            rid,
            params=[Param("n_f", "5")],
            metrics=[Metric(f"cost_{k}", v, _ms(NOW), 0) for k, v in (cost or {}).items()],
        )
        if ended is not None:
            self.client.set_terminated(rid, status, end_time=_ms(NOW - ended))
        return rid

    def read(self) -> status.Status:
        return status.read(status.locate("s", tracking_uri=self.uri), now=NOW)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def test_trials_are_counted_by_how_they_ended_and_what_runs(tmp_path):
    rec = Record(tmp_path, total=6)
    rec.trial("FINISHED", 100, 80)
    rec.trial("FAILED", 100, 90)
    rec.trial("KILLED", 100, 70, tags={schema.STOPPED: "asha"})
    rec.trial("RUNNING", 30)
    s = rec.read()
    assert s.trials == {
        "total": 6,
        "finished": 1,
        "failed": 1,
        "stopped": 1,
        "running": 1,
        "interrupted": 0,
        "to_run": 3,
    }
    assert s.state == "running" and s.parent_status == "RUNNING" and s.kind == "grid"


def test_a_running_trial_shows_its_progress_node_and_times(tmp_path):
    rec = Record(tmp_path)
    progress = {"stage": "vae", "epoch": 3, "epochs": 6, "loss": 98.5, "val": None, "at": NOW - 4}
    rec.trial("RUNNING", 75, tags={schema.PROGRESS: json.dumps(progress), schema.NODE: "gpu-9"})
    (r,) = rec.read().running
    assert (r.stage, r.epoch, r.epochs, r.loss, r.val, r.node) == ("vae", 3, 6, 98.5, None, "gpu-9")
    assert r.elapsed_s == pytest.approx(75) and r.progress_age_s == pytest.approx(4)
    line = render.running(r)
    assert "vae epoch 3/6" in line and "on gpu-9" in line and "1m15s" in line


def test_time_left_is_the_mean_finished_trial_spread_over_the_running_ones(tmp_path):
    rec = Record(tmp_path, total=5)
    rec.trial("FINISHED", 100, 90)  # 10 s
    rec.trial("FINISHED", 100, 80)  # 20 s
    rec.trial("RUNNING", 5)  # 10 s of a 15 s mean to go
    left = rec.read().time_left
    # 3 to run: the running one's 10 s, and two waiting trials of 15 s, one at a time
    assert left["mean_trial_s"] == pytest.approx(15)
    assert left["concurrency"] == 1
    assert left["seconds"] == pytest.approx(10 + 2 * 15)


def test_time_left_is_unknown_before_a_trial_finished(tmp_path):
    rec = Record(tmp_path)
    rec.trial("RUNNING", 5)
    left = rec.read().time_left
    assert left["seconds"] is None and left["why"] == "no trial has finished yet"
    assert "unknown (no trial has finished yet)" in render.left(left)


def test_cost_is_summed_over_ended_trial_runs_in_hours(tmp_path):
    rec = Record(tmp_path)
    rec.trial("FINISHED", 100, 90, cost={"wall_s": 3600, "cpu_s": 7200, "gpu_s": 1800})
    rec.trial("FAILED", 100, 90, cost={"wall_s": 1800, "cpu_s": 1800, "gpu_s": 0})
    rec.trial("FINISHED", 100, 90)  # written before trials recorded their cost
    rec.trial("RUNNING", 10)  # logs its cost when it ends
    c = rec.read().cost
    assert c == {"wall_h": 1.5, "cpu_h": 2.5, "gpu_h": 0.5, "runs": 3, "measured": 2}
    shown = render.spent(c)
    assert "2.5 CPU-hours" in shown and "0.5 GPU-hours" in shown and "1 more" in shown


def test_a_driver_elsewhere_is_alive_by_a_recent_heartbeat(tmp_path):
    s = Record(tmp_path, beat_age=5).read()
    assert (s.driver.state, s.driver.judged_by, s.driver.alive) == ("alive", "heartbeat", True)
    assert (s.driver.host, s.driver.pid, s.driver.role, s.driver.lease) == ("gpu-7", 4242, "run", 3)
    assert "last heartbeat 5 s ago by the driver's clock" in render.driver(s.driver)


def test_a_silent_driver_elsewhere_is_not_alive_and_its_running_runs_are_interrupted(tmp_path):
    rec = Record(tmp_path, total=3, beat_age=300)
    rec.trial("FINISHED", 400, 390)
    rec.trial("RUNNING", 350)
    s = rec.read()
    assert (s.driver.state, s.driver.alive, s.state) == ("dead", False, "stopped")
    assert s.trials["running"] == 0 and s.trials["interrupted"] == 1
    assert s.trials["to_run"] == 2 and s.running == []
    assert s.time_left["seconds"] is None
    assert "continue with: fsvae-study resume --name s" in render.text(s)


def test_a_driver_on_this_machine_is_judged_by_its_process(tmp_path):
    me = {**processes.identify(), "role": "run"}
    alive = status.judge(Holder(2, "t", me, "0", False, None), {}, NOW)
    assert (alive.state, alive.judged_by) == ("alive", "process")
    gone = {**me, "pid": _a_dead_pid()}
    dead = status.judge(Holder(2, "t", gone, "0", False, None), {}, NOW)
    assert (dead.state, dead.judged_by) == ("dead", "process")
    released = status.judge(Holder(2, "t", gone, "0", True, None), {}, NOW)
    assert (released.state, released.alive) == ("ended", False)


def _a_dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_the_record_opens_with_the_command_its_store_takes():
    sqlite = status.commands("sqlite:////abs/mlflow.db", None)
    assert sqlite == {
        "mlflow": "mlflow ui --backend-store-uri sqlite:////abs/mlflow.db "
        "--host 127.0.0.1 --port 5000",
        "optuna": None,
    }
    server = status.commands("http://10.0.0.5:5000", "postgresql://u:pw@db/optuna")
    assert server == {
        "mlflow": "http://10.0.0.5:5000",
        "optuna": "optuna-dashboard postgresql://u@db/optuna",
    }
    assert "pw" not in status.commands("postgresql://u:pw@db/mlflow", None)["mlflow"]


def test_an_unknown_study_names_the_studies_in_the_store(tmp_path):
    Record(tmp_path)
    with pytest.raises(StudyError, match=r"no study 'other' in sqlite:///.*; studies there: s$"):
        status.read(status.locate("other", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))


def test_no_store_at_all_is_a_clear_error(tmp_path):
    with pytest.raises(StudyError, match="no MLflow store at"):
        status.locate("s", storage=str(tmp_path))


def test_the_json_has_every_documented_key(tmp_path):
    rec = Record(tmp_path)
    rec.trial("RUNNING", 5)
    out = json.loads(render.as_json(rec.read()))
    assert set(out) == {
        "name",
        "kind",
        "state",
        "tracking_uri",
        "optuna_storage",
        "experiment_id",
        "parent_run_id",
        "parent_status",
        "sessions",
        "driver",
        "trials",
        "running",
        "time_left",
        "cost",
        "open",
        "read_at",
    }
    assert set(out["driver"]) == {
        "host",
        "pid",
        "role",
        "lease",
        "state",
        "judged_by",
        "heartbeat_age_s",
        "alive",
    }
    assert set(out["running"][0]) == {
        "key",
        "run_id",
        "stage",
        "epoch",
        "epochs",
        "loss",
        "val",
        "node",
        "elapsed_s",
        "progress_age_s",
    }
    assert out["read_at"] == NOW
