"""study: runs fsvae trials as Ray Tune studies searched by Optuna, recorded in MLflow."""
