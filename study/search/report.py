"""What a trial reports to Ray Tune besides its metrics: the keys that the searchers (a
grid's, an Optuna search's) and the driver's callbacks read to tell how it ended."""

FINAL = "trial_complete"  # present (=1) only in the last report of a trial that finished
FAILED = "trial_failed"  # present (=1) in the last report of a trial whose own code raised
ERROR_KIND = "error_kind"  # with FAILED: "data" (the data or split cannot serve it) | "trial"
DATA_PROBLEMS = "data_problems"  # the data stage's problems (fsvae.data.examples), as JSON
