'''results: a study's MLflow runs as tables and figures. From Python, `load_table`.

`load_table` takes the options of `fsvae-study table` and returns a `Table`: its `cells`
are a pandas DataFrame (one row per row, n_f and metric: mean, std, n, 95% interval, the
run ids), and `to_markdown()`, `to_latex()`, `to_csv()` render it (a notebook shows the
markdown). For a study run with the defaults, `load_table("paper")` reads
./fsvae-studies/mlflow.db.

Example: a two-seed study written the way `fsvae-study run` writes one, then its table.

>>> import tempfile
>>> from mlflow.entities import Param
>>> from mlflow.tracking import MlflowClient
>>> from results import load_table
>>> uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
>>> client = MlflowClient(uri)
>>> exp = client.create_experiment("demo")
>>> parent = client.create_run(exp, tags={"fsvae.role": "study"}).info.run_id
>>> for seed, acc_h in [(0, 0.40), (1, 0.44)]:
...     run = client.create_run(exp, tags={"fsvae.role": "trial",
...                                        "mlflow.parentRunId": parent}).info.run_id
...     config = {"method": "vae", "sampling_factor": 30, "n_f": 5, "seed": seed}
...     client.log_batch(run, params=[Param(k, str(v)) for k, v in config.items()])
...     client.log_metric(run, "test_acc_h", acc_h)
...     client.log_metric(run, "test_acc", 0.60)
...     client.set_terminated(run)
>>> table = load_table("demo", tracking_uri=uri)
>>> table.cells[["row", "n_f", "metric", "mean", "n"]]
       row  n_f metric  mean  n
0  vae x30    5  acc_h  42.0  2
1  vae x30    5    acc  60.0  2
>>> print(table.to_markdown().splitlines()[2])
| method | n_f=5 acc_h | n_f=5 acc |
'''

from __future__ import annotations

from study._lazy import face

# Imported on first use (PEP 562): `import results` loads no MLflow until a table is read.
_NAMES = {
    "load_table": "load",
    "build_table": "load",
    "ResultsError": "errors",
    "ACC_H": "table",
    "FORMATS": "table",
    "Table": "table",
    "Study": "store",
    "load_study": "store",
    "store_uri": "store",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
