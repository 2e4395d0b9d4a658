"""The `slurm` command: a study submitted to Slurm as cluster/slurm.sbatch with the study's
own arguments, which continues by itself across preemptions and requeues (docs/slurm.md).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from fsvae_study.output import err

SCRIPT = Path(__file__).resolve().parents[1] / "cluster" / "slurm.sbatch"
# sbatch's own options this command takes (the rest are `fsvae-study run`'s)
SBATCH = {
    "nodes": "nodes",
    "gpus_per_node": "gpus-per-node",
    "cpus_per_task": "cpus-per-task",
    "time": "time",
    "partition": "partition",
}


def register(sub) -> None:
    from fsvae_study.studies import accept_changed_data
    from study.plan import options

    s = sub.add_parser(
        "slurm",
        help="submit a study to Slurm: it starts Ray on the job's nodes and runs "
        "or continues the study, and requeues itself when preempted (docs/slurm.md)",
        description="Takes `fsvae-study run`'s options and sbatch's five below; checks the "
        "study, copies cluster/slurm.sbatch into the study's folder and submits it with "
        "sbatch. Prints the job id and the status command.",
    )
    s.add_argument(
        "--space",
        required=True,
        help="search space: a YAML file, or the name of a shipped one (as `run` takes it)",
    )
    s.add_argument("--data", required=True, help="dataset root, where every node sees it")
    options.add_flags(s, [n for n in options.NAMES if n != "address"])
    accept_changed_data(s)
    s.add_argument("--nodes", type=int, help="nodes (default: the script's, 1)")
    s.add_argument("--gpus-per-node", type=int, help="GPUs per node (default: none asked)")
    s.add_argument("--cpus-per-task", type=int, help="CPUs per node (default: the script's, 8)")
    s.add_argument("--time", help="time limit, e.g. 24:00:00 (default: the script's)")
    s.add_argument("--partition", help="partition (default: the cluster's default)")
    s.add_argument(
        "--sbatch-arg",
        action="append",
        metavar="ARG",
        help="one more sbatch option, as sbatch takes it, e.g. --sbatch-arg=--qos=low "
        "(repeatable; default: none)",
    )
    s.add_argument(
        "--script", help="the batch script (default: this checkout's cluster/slurm.sbatch)"
    )
    s.add_argument(
        "--dry-run", action="store_true", help="print the sbatch command instead of running it"
    )
    s.set_defaults(func=_slurm)


def _slurm(args: argparse.Namespace) -> int:
    from study.plan import making, options
    from study.secrets import redact

    if args.name is None or args.storage is None:
        err(
            "fsvae-study slurm: error: give --name and --storage (a folder every node of the "
            "cluster sees): the job's runs and its requeues find the study by them"
        )
        return 2
    given = options.from_args(args, [n for n in options.NAMES if n != "address"])
    plan = making.make_plan(args.space, args.data, **given)  # checked before it queues
    script = Path(args.script or SCRIPT)
    if not script.is_file():
        err(
            f"fsvae-study slurm: error: no batch script at {script}: give --script, the path "
            f"of this project's cluster/slurm.sbatch"
        )
        return 2
    folder = Path(plan.folder)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "slurm.sbatch"  # what the job (and every requeue of it) runs
    shutil.copyfile(script, copy)
    fsvae = Path(sys.executable).with_name("fsvae-study")
    command = [
        "sbatch",
        "--parsable",
        f"--job-name=fsvae-{plan.name}",
        f"--output={folder}/slurm-%j.out",
        f"--export=ALL,FSVAE_STUDY={fsvae if fsvae.is_file() else 'fsvae-study'}",
    ]
    command += [
        f"--{flag}={getattr(args, key)}"
        for key, flag in SBATCH.items()
        if getattr(args, key) is not None
    ]
    command += args.sbatch_arg or []
    run = [
        "--space",
        args.space,
        "--data",
        plan.data,
        *options.to_argv({**given, "storage": plan.storage}),
    ]
    if args.accept_changed_data:
        run.append("--accept-changed-data")
    command += [str(copy), *run]
    if args.dry_run:
        print(shlex.join(command))
        return 0
    if shutil.which("sbatch") is None:
        err("fsvae-study slurm: error: sbatch is not on PATH: run this on a Slurm login node")
        return 2
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        err(f"fsvae-study slurm: error: sbatch refused the job: {done.stderr.strip()}")
        return 2
    job = done.stdout.strip().split(";")[0]
    where = f" --storage {shlex.quote(plan.storage)}"
    if args.tracking_uri:
        where += f" --tracking-uri {shlex.quote(redact(args.tracking_uri))}"
    print(f"submitted study {plan.name!r} as Slurm job {job}")
    print(f"  its log: {folder}/slurm-{job}.out")
    print(f"  watch it: fsvae-study status --name {plan.name}{where} --watch")
    print(f"  stop it: scancel {job}   (continue later: the same fsvae-study slurm command)")
    return 0
