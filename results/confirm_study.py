"""Running a confirmation: a search's top configurations of each stratum rerun with seeds it
did not use, as a grid study linked to it (docs/analysis.md#confirming-the-winner).
`confirm_study` is what `fsvae-study confirm` calls; results.confirm_table reads the
result back as a table.

A seed also redraws the minority classes and their images, so the confirmation asks
whether the winner holds on other splits, not only under other training noise.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from results.confirm_table import ranked, top
from results.store import load_study, store_uri
from study.errors import StudyError
from study.plan.options import CONFIRM_SEEDS as DEFAULT_SEEDS
from study.plan.options import INHERITED, SEEDS_FORM
from study.plan.plan import Plan
from study.record.read import goals
from study.secrets import redact


def confirm_study(
    experiment: str,
    *,
    top_k: int = 3,
    seeds: str | None = None,
    name: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    address: str | None = None,
    say: Callable[[str], None] = print,
    **settings,
):
    """Reruns the top `top_k` configurations of each stratum of the search `experiment`
    with new seeds (`seeds` in the --seeds form; default: the DEFAULT_SEEDS after the largest
    the search used), as the grid study `name` (default `<search>-confirm`) under the
    search's storage, data, preset and cache. `settings`: the search's resources and
    retries to change (INHERITED). Returns the confirmation's study.StudyResult; StudyError
    names a bad request before anything runs."""
    from study import run_study
    from study.plan import plan as plan_mod
    from study.plan import storage as locations
    from study.record.schema import CONFIRMS

    if top_k < 1:
        raise StudyError(f"--top must be at least 1, got {top_k}")
    asked = parse_seeds(seeds) if seeds is not None else None
    location = locations.resolve(storage or plan_mod.DEFAULT_STORAGE)
    uri = store_uri(tracking_uri, storage)
    search = load_study(experiment, uri)
    _check_search(search)
    new = _new_seeds(search, asked, seeds)
    plan = plan_mod.read(location, experiment)
    if plan is None:
        raise StudyError(
            f"no study.json of the search {experiment!r} under "
            f"{redact(location)}: give --storage where it ran (its data, preset "
            f"and cache are there)"
        )
    if plan.parent_run_id and plan.parent_run_id != search.parent_run_id:
        search = load_study(experiment, uri, parent_run=plan.parent_run_id)  # its own run
    _check_seed_free(plan)
    name = name or f"{search.name}-confirm"
    picks = _picks(search, top_k)
    space = confirmation_space(plan, picks, new, name, redact(locations.join(location, name)))
    _announce(search.name, picks, new, space, say)
    unknown = sorted(set(settings) - set(INHERITED))
    if unknown:
        raise TypeError(f"confirm_study: unknown settings {unknown}; expected {INHERITED}")
    result = run_study(
        space,
        plan.data,
        resume=resume,
        name=name,
        storage=location,
        tracking_uri=uri,
        tags={CONFIRMS: search.name},
        preset=plan.preset,
        address=address,
        cache_dir=plan.cache_dir,
        no_cache=plan.cache_dir is None,
        **{
            k: settings.get(k) if settings.get(k) is not None else getattr(plan, k)
            for k in INHERITED
        },
    )
    if plan.parent_run_id is None:  # set when the search ran
        raise StudyError(f"study.json of the search {experiment!r} names no parent run")
    _link(uri, plan.parent_run_id, name)
    return result


def parse_seeds(text: str) -> list[int]:
    """'1-3,7' -> [1, 2, 3, 7] (sorted, each once); StudyError naming a bad part."""
    from fsvae.config import ConfigError, check_value

    seeds: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise StudyError(
                f"--seeds {text!r}: cannot read {part.strip()!r}; expected {SEEDS_FORM}"
            )
        low, high = int(m[1]), int(m[2] or m[1])
        if high < low:
            raise StudyError(
                f"--seeds {text!r}: the range {part.strip()} runs backwards; expected {SEEDS_FORM}"
            )
        try:
            check_value("seed", high)
        except ConfigError as e:
            raise StudyError(f"--seeds {text!r}: {e}") from None
        seeds.update(range(low, high + 1))
    return sorted(seeds)


def default_seeds(used: set[int]) -> list[int]:
    """The DEFAULT_SEEDS seeds after the largest one the search used."""
    start = max(used, default=-1) + 1
    return list(range(start, start + DEFAULT_SEEDS))


def _new_seeds(search, asked: list[int] | None, spec: str | None) -> list[int]:
    """The seeds asked (`spec` as given), or the default; StudyError if the search used one."""
    used = {int(c["seed"]) for c in search.trials["config"] if "seed" in c}
    seeds = asked if asked is not None else default_seeds(used)
    again = sorted(used & set(seeds))
    if again:
        raise StudyError(
            f"--seeds {spec}: the search used seed(s) "
            f"{', '.join(map(str, again))}; a confirmation needs splits the "
            f"search did not see (default: {seeds_spec(default_seeds(used))})"
        )
    return seeds


def _check_search(search) -> None:
    """Only an Optuna search has winners to confirm."""
    if search.confirms:
        raise StudyError(
            f"experiment {search.name!r} is itself a confirmation (of "
            f"{search.confirms!r}); confirm the search: --experiment "
            f"{search.confirms}"
        )
    if search.kind != "optuna":
        raise StudyError(
            f"experiment {search.name!r} is a {search.kind} study; confirm reruns "
            f"the best configurations of an Optuna search (a grid's rows already "
            f"run every configuration: add seeds with --grid seed=...)"
        )


def _check_seed_free(plan: Plan) -> None:
    """A search that varies the seed has no seed-free configuration to rerun."""
    space = plan.space
    for where in ("params", "strata"):
        if "seed" in (space.get(where) or {}):
            raise StudyError(
                f"search {plan.name!r} varies seed itself (in its {where}); "
                f"confirm reruns its configurations with new seeds, so the seed "
                f"cannot be part of them"
            )


def _picks(search, k: int):
    """The top `k` configurations of each stratum, in the search's own order
    (results.confirm_table.top: by its objectives in turn, then the earlier trial)."""
    picks = top(ranked(search, search.objective, search.mode), k)
    if picks.empty:
        raise StudyError(
            f"search {search.name!r} has no finished trial with "
            f"{search.objective}: nothing to confirm"
        )
    return picks


def confirmation_space(plan: Plan, picks, seeds: list[int], name: str, folder: str):
    """The grid: one variant per picked configuration (its stratum and searched values),
    crossed with the seeds, over the search's fixed keys (its seed left out)."""
    import yaml

    import search_spaces
    from fsvae.config import parse_value

    space = plan.space
    # a grid has one objective: the search's primary one
    objective, mode = goals(space["objective"], space["mode"])[0]
    raw = {
        "name": name,
        "kind": "grid",
        "description": f"Confirmation of the search {plan.name}: its top "
        f"configurations of each stratum by {objective}, rerun with new "
        f"seeds.",
        "preset": plan.preset,
        "objective": objective,
        "mode": mode,
        "fixed": {k: v for k, v in space["fixed"].items() if k != "seed"},
        "grid": {"seed": list(seeds)},
        "variants": [{k: [parse_value(k, v)] for k, v in conf} for conf in picks["configuration"]],
        "resources": space.get("resources") or {},
    }
    text = yaml.safe_dump(raw, sort_keys=False)
    return search_spaces.parse(raw, f"{folder}/space.yaml", text)


def _announce(search: str, picks, seeds: list[int], space, say) -> None:
    """What is about to run, one line per stratum."""
    say(
        f"confirm {search}: seeds {seeds_spec(seeds)} x {len(space.variants)} configuration(s) "
        f"= {len(space.trials())} trials"
    )
    for stratum, group in picks.groupby("stratum", sort=False):
        shown = ", ".join(
            f"rank {r} (trial {t})" for r, t in zip(group["rank"], group["trial_key"])
        )
        say(f"  {stratum or '(all)'}: {shown}")


def seeds_spec(seeds: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3,7': the --seeds form."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        start = s if start is None else start
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(str(s) if s == start else f"{start}-{s}")
            start = None
    return ",".join(parts)


def _link(uri: str, search_parent: str, name: str) -> None:
    """Tags the search's parent run with its confirmations (comma-separated, each once)."""
    from mlflow.tracking import MlflowClient

    from study.record.schema import CONFIRMED_BY

    client = MlflowClient(uri)
    names = [
        n for n in client.get_run(search_parent).data.tags.get(CONFIRMED_BY, "").split(",") if n
    ]
    if name not in names:
        client.set_tag(search_parent, CONFIRMED_BY, ",".join(names + [name]))
