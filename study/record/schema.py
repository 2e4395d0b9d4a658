"""What a study writes to MLflow, by name: the tags and roles that `results/` reads back, and
where the default store lives. No MLflow import here, so planning a study (and failing fast
on a bad argument) stays quick.

Identity of a study (docs/failures.md): its name in its tracking store, held
by its parent run (study/identity/names.py). Identity of a trial: the tag `fsvae.trial_key` under
that parent run. A grid trial is its point in the grid ("grid:" + a hash of the point's
keys and values, seed included); an Optuna trial is its number in the stratum's Optuna
study ("n_f=5#3", "#3" without strata). Keys are unique within one parent run only, so
every look-up by key goes through the parent. A key with a FINISHED run is done; an
unfinished run of a key is replaced by its re-run.
"""

from __future__ import annotations

# The parent run's (the study's) tags
ROLE = "fsvae.role"  # "study" (the parent run) or "trial"
SPACE_KIND = "fsvae.space_kind"  # grid | optuna
OBJECTIVE = "fsvae.objective"  # the validation objective(s), comma-separated, primary first
MODE = "fsvae.mode"  # max | min per objective, comma-separated
STRATA = "fsvae.strata"  # the keys a search is stratified by, comma-separated
COMMAND = "fsvae.command"  # the command line, without passwords
CODE_VERSION = "fsvae.code_version"  # the project's version and `git describe`
STORAGE = "fsvae.storage"  # the study's --storage
DATA = "fsvae.data"  # the dataset's root
DATA_FINGERPRINT = "fsvae.data_fingerprint"  # fsvae.data.fingerprint of the dataset
OPTUNA_STORAGE = "fsvae.optuna_storage"  # a search's Optuna store, without passwords
GIT_DIRTY = "fsvae.git_dirty"  # true when the driver's checkout had changes
VERSION = "fsvae.version."  # + python|torch|torchvision|cuda|ray|optuna|mlflow
# A trial run's tags (and ROLE, STRATUM, ... below)
ATTEMPT = "fsvae.attempt"  # 1 + the runs of its key it replaced
PREVIOUS_ERROR = "fsvae.previous_error"  # the reason the run it replaced failed
MINORITY_CLASSES = "fsvae.minority_classes"  # the GFSL split's minority classes
PREBUILD = "cache.backbone.prebuild."  # + stratum: the parent's shared backbone build
PARENT = "mlflow.parentRunId"
TRIAL_KEY = "fsvae.trial_key"
TRIAL_ID = "fsvae.trial_id"  # Ray Tune's id of the attempt that wrote the run
STRATUM = "fsvae.stratum"
ERROR = "fsvae.error"  # a failed trial's reason
FAILURE = "fsvae.failure"  # who failed: "trial" (its own code) or "infrastructure"
# a FINISHED trial run whose PNG figures are still to come (study/figures/late.py)
FIGURES = "fsvae.figures"
STOPPED = "fsvae.stopped"  # a trial an early-stopping scheduler ended
INTERRUPTED = "fsvae.interrupted"  # a run its study stopped before it finished; it runs again
REPLACES = "fsvae.replaces"  # the earlier runs of the same key that this run replaced
BEST_MODEL = "fsvae.best_model"  # parent and best trial run: the logged model's URI
BEST_MODEL_RUN = "fsvae.best_model.run"  # parent: the trial run the model was built from
STUDY = "fsvae.study"  # a trial run: the name of its study
POINT = "fsvae.point"  # a trial run: what the study handed it (JSON), e.g. Optuna's choices
RETRY_OF = "fsvae.retry_of"  # a trial run: the key of the failed trial it retries
DRIVER = "fsvae.driver"  # the parent: the process driving the study now (JSON)
HEARTBEAT = "fsvae.heartbeat"  # the parent: when that driver last said it was alive (Unix s)
PLAN = "study.json"  # the parent's artifact: the study's plan, what `resume` needs
NODE = "fsvae.node"  # a trial run: the host its worker ran on
# A trial run's progress while it runs (JSON, sent with its curves every FSVAE_LIVE_S,
# study/record/live.py): {"stage", "epoch", "epochs", "loss", "val", "at"}: the stage
# (data, split, backbone, vae, classifier, or "starting"), its epoch (from 1) of its
# epochs, the latest training loss and validation objective, when (Unix s, worker's clock)
PROGRESS = "fsvae.progress"
# The parent run's progress as metrics, one step per trial that ended (the study's count):
# trials finished, failed and running, and the best objective value so far
STUDY_PROGRESS = ("study_finished", "study_failed", "study_running", "study_best")
# A trial run's cost (fsvae's result["cost"]) and, summed at a session's end, its study's
COST = "cost_"  # + wall_s, cpu_s, gpu_s (0 without a GPU), gpu_peak_mb, host_peak_mb
COST_TOTAL = "cost_total_"  # the parent: + wall_h, cpu_h, gpu_h, trials
OPTUNA_PARENT = "fsvae.parent_run_id"  # an Optuna study's user attr: its study's parent run
PLACEHOLDER = "fsvae.placeholder"  # an Optuna trial's user attr: a number MLflow has no run for
CONFIRMS = "fsvae.confirms"  # a confirmation's parent: the search whose winners it reruns
CONFIRMED_BY = "fsvae.confirmed_by"  # a search's parent: its confirmations, comma-separated

# A trial's curves: metric "<stage>_<key>", one step per epoch (the paper's Figures 3 and 4).
CURVE_KEYS = {
    "backbone": ("train_loss", "train_acc", "val_acc", "val_acc_h", "lr", "images_per_s"),
    "vae": ("recon", "kl", "beta", "loss", "val_recon", "val_kl"),
    "classifier": ("train_loss", "train_acc", "val_acc", "val_acc_h"),
}
