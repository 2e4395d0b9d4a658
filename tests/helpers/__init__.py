"""Plain functions for every test (fixtures are conftest.py's), one job per module:

- data.py: images, datasets and tiny trial configs built in the test
- processes.py: the `fsvae-study` command in a subprocess, waits, kills, fault-injection
  pauses, an `mlflow server`
- postgres.py: a throwaway PostgreSQL server
- ray_processes.py: a `ray start --head` of the test's own, and a killed driver's Ray, found
  in /proc and ended by their pids (never by name: other Rays on the machine are left alone)
- record.py: MLflow runs read back, and the one writer of hand-made study records
- checks.py: statistics and table cells worked out by hand
- shape.py: a study's record less what differs between two runs of it
  (`from helpers.shape import record_shape`)
- callcount/: a sitecustomize that counts a command's MLflow and Optuna calls, in every
  process it starts (put the folder first on PYTHONPATH)

Tests import from here: `from helpers import cli, make_data`.
"""

from helpers.checks import hand_stats, md_cells, same
from helpers.data import (
    FAST,
    GRID4,
    TINY,
    make_data,
    make_folders,
    make_fs14,
    quiet,
    tiny_config,
    write_image,
)
from helpers.postgres import Postgres, PostgresMissing, start_postgres
from helpers.processes import (
    REPO,
    cli,
    env,
    first_trials_done,
    free_port,
    kill_driver,
    pause_env,
    paused,
    python,
    release,
    release_new,
    start_cli,
    start_mlflow_server,
    stop_process_group,
    wait_until,
)
from helpers.ray_processes import RayHead, reap_ray_orphans, start_ray_head
from helpers.record import (
    T0,
    StudyWriter,
    SyntheticStudy,
    client,
    grid_params,
    runs,
    tracking_uri,
    trial_runs,
)

__all__ = [
    "hand_stats",
    "md_cells",
    "same",
    "FAST",
    "GRID4",
    "TINY",
    "make_data",
    "make_folders",
    "make_fs14",
    "quiet",
    "tiny_config",
    "write_image",
    "Postgres",
    "PostgresMissing",
    "start_postgres",
    "REPO",
    "cli",
    "env",
    "first_trials_done",
    "free_port",
    "kill_driver",
    "pause_env",
    "paused",
    "reap_ray_orphans",
    "release",
    "release_new",
    "python",
    "start_cli",
    "start_mlflow_server",
    "stop_process_group",
    "wait_until",
    "RayHead",
    "start_ray_head",
    "SyntheticStudy",
    "T0",
    "StudyWriter",
    "client",
    "grid_params",
    "runs",
    "tracking_uri",
    "trial_runs",
]
