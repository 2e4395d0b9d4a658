"""fsvae_study: the top floor. The `fsvae-study` command line, and the commands that both
start studies and read their results. It imports `study` (Ray Tune, Optuna, MLflow around
the method) and `results` (tables and figures from MLflow); neither imports it, so the
packages import one way: fsvae <- search_spaces <- study <- results <- fsvae_study."""
