"""The `confirm` command: a search's top configurations of each stratum rerun with seeds it
did not use, as a grid study linked to it (README "Confirming the winner").

A seed also redraws the minority classes and their images, so the confirmation asks
whether the winner holds on other splits, not only under other training noise.
"""
from __future__ import annotations

import argparse
import re

from fsvae_study.studies import study_location, trial_resources

SEEDS_FORM = "comma-separated seeds and ranges, e.g. 5-9 or 5,7,10-12"
DEFAULT_SEEDS = 5  # how many seeds after the largest the search used, by default


def register(sub) -> None:
    c = sub.add_parser("confirm", help="rerun an Optuna search's top configurations of each "
                       "stratum with new seeds, as a grid study")
    c.add_argument("--experiment", required=True, help="the search (its study name)")
    c.add_argument("--top", type=int, default=3, metavar="K",
                   help="configurations per stratum, best first by the search's validation "
                   "objective (default 3)")
    c.add_argument("--seeds", metavar="SPEC", help=f"{SEEDS_FORM} (default: the "
                   f"{DEFAULT_SEEDS} after the largest seed the search used)")
    study_location(c, name="the confirmation's study name (default: <search>-confirm)")
    trial_resources(c, inherit="the search")
    c.add_argument("--resume", action="store_true",
                   help="continue the confirmation of this name if it exists")
    c.set_defaults(func=_confirm)


def parse_seeds(text: str) -> list[int]:
    """'1-3,7' -> [1, 2, 3, 7] (sorted, each once); StudyError naming a bad part."""
    from fsvae.config import ConfigError, check_value
    from study.errors import StudyError

    seeds: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise StudyError(f"--seeds {text!r}: cannot read {part.strip()!r}; expected "
                             f"{SEEDS_FORM}")
        low, high = int(m[1]), int(m[2] or m[1])
        if high < low:
            raise StudyError(f"--seeds {text!r}: the range {part.strip()} runs backwards; "
                             f"expected {SEEDS_FORM}")
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


def _confirm(args: argparse.Namespace) -> int:
    from results import load_study, store_uri
    from study import plan as plan_mod, run_study, storage
    from study.errors import StudyError
    from study.schema import CONFIRMS

    if args.top < 1:
        raise StudyError(f"--top must be at least 1, got {args.top}")
    asked = parse_seeds(args.seeds) if args.seeds is not None else None
    location = storage.resolve(args.storage or plan_mod.DEFAULT_STORAGE)
    uri = store_uri(args.tracking_uri, args.storage)
    search = load_study(args.experiment, uri)
    _check_search(search)
    seeds = _new_seeds(search, asked, args.seeds)
    plan = plan_mod.read(location, search.name)
    if plan is None:
        raise StudyError(f"no study.json of the search {search.name!r} under {location}: "
                         f"give --storage where it ran (its data, preset and cache are there)")
    _check_seed_free(plan)
    name = args.name or f"{search.name}-confirm"
    picks = _picks(search, args.top)
    space = confirmation_space(plan, picks, seeds, name, storage.join(location, name))
    _announce(search.name, picks, seeds, space)
    summary = run_study(space, plan["data"], resume=args.resume, name=name, storage=location,
                        tracking_uri=uri, tags={CONFIRMS: search.name}, **_settings(args, plan))
    _link(uri, plan["parent_run_id"], name)
    return summary["exit_code"]


def _new_seeds(search, asked: list[int] | None, spec: str | None) -> list[int]:
    """The seeds asked (`spec` as given), or the default; StudyError if the search used one."""
    from study.errors import StudyError

    used = {int(c["seed"]) for c in search.trials["config"] if "seed" in c}
    seeds = asked if asked is not None else default_seeds(used)
    again = sorted(used & set(seeds))
    if again:
        raise StudyError(f"--seeds {spec}: the search used seed(s) "
                         f"{', '.join(map(str, again))}; a confirmation needs splits the "
                         f"search did not see (default: {_spec(default_seeds(used))})")
    return seeds


def _check_search(search) -> None:
    """Only an Optuna search has winners to confirm."""
    from study.errors import StudyError

    if search.confirms:
        raise StudyError(f"experiment {search.name!r} is itself a confirmation (of "
                         f"{search.confirms!r}); confirm the search: --experiment "
                         f"{search.confirms}")
    if search.kind != "optuna":
        raise StudyError(f"experiment {search.name!r} is a {search.kind} study; confirm reruns "
                         f"the best configurations of an Optuna search (a grid's rows already "
                         f"run every configuration: add seeds with --grid seed=...)")


def _check_seed_free(plan: dict) -> None:
    """A search that varies the seed has no seed-free configuration to rerun."""
    from study.errors import StudyError

    space = plan["space"]
    for where in ("params", "strata"):
        if "seed" in (space.get(where) or {}):
            raise StudyError(f"search {plan['name']!r} varies seed itself (in its {where}); "
                             f"confirm reruns its configurations with new seeds, so the seed "
                             f"cannot be part of them")


def _picks(search, k: int):
    """The top `k` configurations of each stratum, in the search's own order
    (results.confirm.top: by its objectives in turn, then the earlier trial)."""
    from results.confirm import ranked, top
    from study.errors import StudyError

    picks = top(ranked(search, search.objective, search.mode), k)
    if picks.empty:
        raise StudyError(f"search {search.name!r} has no finished trial with "
                         f"{search.objective}: nothing to confirm")
    return picks


def confirmation_space(plan: dict, picks, seeds: list[int], name: str, folder: str):
    """The grid: one variant per picked configuration (its stratum and searched values),
    crossed with the seeds, over the search's fixed keys (its seed left out)."""
    import yaml

    import search_spaces
    from fsvae.config import parse_value
    from results.selection import goals

    space = plan["space"]
    # a grid has one objective: the search's primary one
    objective, mode = goals(space["objective"], space["mode"])[0]
    raw = {"name": name, "kind": "grid",
           "description": f"Confirmation of the search {plan['name']}: its top "
                          f"configurations of each stratum by {objective}, rerun with new "
                          f"seeds.",
           "preset": plan["preset"], "objective": objective, "mode": mode,
           "fixed": {k: v for k, v in space["fixed"].items() if k != "seed"},
           "grid": {"seed": list(seeds)},
           "variants": [{k: [parse_value(k, v)] for k, v in conf}
                        for conf in picks["configuration"]],
           "resources": space.get("resources") or {}}
    text = yaml.safe_dump(raw, sort_keys=False)
    return search_spaces.parse(raw, f"{folder}/space.yaml", text)


def _settings(args: argparse.Namespace, plan: dict) -> dict:
    """run_study's options: the search's data, preset and cache; its resources and retries
    unless given (a trial's CPU count sets its threads, and so its last bits)."""
    given = {k: getattr(args, k) for k in ("cpus_per_trial", "gpus_per_trial",
                                           "max_concurrent", "max_failures", "infra_retries")}
    return {"preset": plan["preset"], "address": args.address,
            "cache_dir": plan["cache_dir"], "no_cache": plan["cache_dir"] is None,
            **{k: plan.get(k) if v is None else v for k, v in given.items()}}


def _announce(search: str, picks, seeds: list[int], space) -> None:
    """What is about to run, one line per stratum."""
    print(f"confirm {search}: seeds {_spec(seeds)} x {len(space.variants)} configuration(s) "
          f"= {len(space.trials())} trials", flush=True)
    for stratum, group in picks.groupby("stratum", sort=False):
        shown = ", ".join(f"rank {r} (trial {t})" for r, t in
                          zip(group["rank"], group["trial_key"]))
        print(f"  {stratum or '(all)'}: {shown}", flush=True)


def _spec(seeds: list[int]) -> str:
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

    from study.schema import CONFIRMED_BY

    client = MlflowClient(uri)
    names = [n for n in client.get_run(search_parent).data.tags.get(CONFIRMED_BY, "")
             .split(",") if n]
    if name not in names:
        client.set_tag(search_parent, CONFIRMED_BY, ",".join(names + [name]))
