"""How many trials fANOVA needs to rank the one parameter that matters first: the measurement
behind results.importance.MIN_TRIALS.

Searches shaped like smoke-search (beta_max log-uniform, latent_dim log-int, two
categoricals of three values) whose objective depends on beta_max alone,
-|log10(beta_max) + 3| (spread 0.58), plus Gaussian noise; each run by a seeded TPE
sampler, then ranked by Optuna's seeded FanovaImportanceEvaluator, as `analyze` ranks.
Prints, per noise level and number of trials, in how many of 40 searches beta_max came
first (a guess among four parameters: 10 of 40). A last block swaps the three other
parameters for five continuous ones, where more trials are needed.

    python bench/fanova_floor.py        # 5-10 minutes on a shared 2-core CPU
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

SEEDS = range(40)


def search(n: int, seed: int, noise: float, continuous: int = 0) -> optuna.Study:
    rng = np.random.default_rng(seed)

    def objective(trial: optuna.Trial) -> float:
        beta = trial.suggest_float("beta_max", 1e-5, 1e-1, log=True)
        if continuous:
            for i in range(continuous):
                trial.suggest_float(f"x{i}", 0.0, 1.0)
        else:
            trial.suggest_int("latent_dim", 8, 64, log=True)
            trial.suggest_categorical("sampling_factor", [5, 10, 30])
            trial.suggest_categorical("beta_schedule", ["linear", "cyclical", "sigmoid"])
        return -abs(np.log10(beta) + 3) + noise * rng.normal()

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n)
    return study


def first(study: optuna.Study) -> str:
    ranked = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    return next(iter(ranked))


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    print("noise  trials  beta_max first (of 40)   [4 parameters]")
    for noise in (0.3, 0.6):
        for n in (10, 15, 20, 30):
            hits = sum(first(search(n, s, noise)) == "beta_max" for s in SEEDS)
            print(f"{noise:5}  {n:6}  {hits:2d}", flush=True)
    print("noise  trials  beta_max first (of 40)   [beta_max + 5 continuous]")
    for n in (20, 40):
        hits = sum(first(search(n, s, 0.3, continuous=5)) == "beta_max" for s in SEEDS)
        print(f"{0.3:5}  {n:6}  {hits:2d}", flush=True)


if __name__ == "__main__":
    main()
