"""The SLURM profiles: the resources each job asks for, and the demo run through a real SLURM.

The fast tests read Snakemake's dry run (no SLURM needed). The slow test installs a single-node
SLURM from Debian's packages (tests/cluster/), runs the reduced demo through it and locally, and
compares the results tables; it runs only with READ_CLIP_SLURM_TEST=1, as root.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake_executor_plugin_slurm.utils import set_gres_string

from read_clip.config import REPO_ROOT

CLUSTER_SCRIPTS = REPO_ROOT / "tests" / "cluster"
DEMO_SMALL = ["config.yaml", "workflow/presets/demo.yaml", "workflow/presets/demo-small.yaml"]
# Run outputs and local state that a copy of the working tree leaves behind.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".snakemake", "results", "logs", "benchmarks", "data", "__pycache__",
    ".pytest_cache", "*.egg-info", "report.html",
)


class Resources(dict):
    """A job's resources as the SLURM plugin reads them: by `.get` and as attributes."""

    __getattr__ = dict.__getitem__


def snakemake_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for a Snakemake run: this interpreter's `read-clip` first on PATH, and the
    package imported from `workdir`, so that each copy runs its own code."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(workdir)
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


def dry_run_jobs(profile: str, **env: str) -> list[dict[str, str]]:
    """Run `snakemake -n --forceall all --profile PROFILE` in the checkout and return one record
    per job: its rule and the `key: value` lines Snakemake prints for it (resources, wildcards).
    --forceall lists every job, whatever outputs the checkout already has."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "all", "--profile", profile],
        cwd=REPO_ROOT,
        env=snakemake_env(REPO_ROOT, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append({"rule": line.split()[1].rstrip(":")})
        elif jobs and line.startswith("    ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            jobs[-1][key] = value
    return jobs


def resources_of(job: dict[str, str]) -> Resources:
    """Parse a dry-run resources line such as `mem_mb=4000, gpu=1` (values stay strings,
    except integers)."""
    resources = Resources()
    for item in job["resources"].split(", "):
        key, _, value = item.partition("=")
        resources[key] = int(value) if value.isdigit() else value
    return resources


@pytest.fixture(scope="module")
def recipe_jobs():
    return dry_run_jobs(
        "profiles/slurm", READ_CLIP_SLURM_ACCOUNT="lab_account", READ_CLIP_SLURM_PARTITION="gpu_part"
    )


def test_recipe_finetune_requests_gpu(recipe_jobs):
    finetune = [resources_of(job) for job in recipe_jobs if job["rule"] == "finetune"]
    assert len(finetune) == 2
    for resources in finetune:
        assert resources["gpu"] == 1
        # The plugin turns the resource into sbatch's option.
        assert set_gres_string(SimpleNamespace(resources=resources)).strip() == "--gpus=1"


def test_recipe_account_from_environment(recipe_jobs):
    for job in recipe_jobs:
        if job["rule"] != "all" and "resources" in job:
            resources = resources_of(job)
            assert resources["slurm_account"] == "lab_account", job["rule"]
            assert resources["slurm_partition"] == "gpu_part", job["rule"]


def test_recipe_scoring_jobs_small(recipe_jobs):
    scoring = [resources_of(job) for job in recipe_jobs if job["rule"] == "score_benchmark"]
    assert scoring
    for resources in scoring:
        assert "gpu" not in resources
        assert resources["mem_mb"] == 4000
        assert set_gres_string(SimpleNamespace(resources=resources)) == ""


def test_demo_small_profile_jobs():
    jobs = dry_run_jobs("profiles/slurm-demo")
    rules = [job["rule"] for job in jobs]
    # Three models (clip, negclip, read_clip) scored on two benchmarks; two caption shards.
    assert rules.count("score_benchmark") == 6
    assert rules.count("make_negatives") == 2
    finetune = [resources_of(job) for job in jobs if job["rule"] == "finetune"]
    assert [resources["gpu"] for resources in finetune] == [1, 1]
    assert {resources["slurm_account"] for resources in finetune} == {"root"}


# Slow: a real SLURM.


def run_script(name: str, *args: str, timeout: int) -> None:
    result = subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS / name), *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def slurm_conf():
    """A single-node SLURM (munge, MariaDB, slurmdbd, slurmctld, slurmd) for this module's tests;
    every daemon is stopped afterwards, also when a test or the start fails."""
    run_script("install.sh", timeout=600)
    # A short path: unix sockets (MariaDB's) are limited to about 100 characters.
    state = Path(tempfile.mkdtemp(prefix="rcslurm-", dir="/tmp"))
    try:
        run_script("start.sh", str(state), timeout=180)
        yield state / "slurm.conf"
    finally:
        run_script("stop.sh", str(state), timeout=300)
        shutil.rmtree(state, ignore_errors=True)


def run_workflow(workdir: Path, args: list[str], log: Path, env: dict[str, str]) -> None:
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "all", *args],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600,
        )
    assert result.returncode == 0, f"snakemake {' '.join(args)} failed:\n{log.read_text()[-4000:]}"


def sacct_jobs(conf: Path, since: str) -> list[dict[str, str]]:
    output = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobID,Comment,State,AllocTRES"],
        env={**os.environ, "SLURM_CONF": str(conf)}, capture_output=True, text=True, check=True,
    ).stdout
    fields = ["id", "comment", "state", "tres"]
    return [dict(zip(fields, row)) for row in csv.reader(io.StringIO(output), delimiter="|")]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("READ_CLIP_SLURM_TEST") != "1",
    reason="installs and starts SLURM daemons (root, 5 to 8 min): set READ_CLIP_SLURM_TEST=1",
)
def test_slurm_demo_matches_local(slurm_conf, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local, cluster):
        shutil.copytree(REPO_ROOT, workdir, ignore=NOT_COPIED)

    run_workflow(
        local, ["--profile", "profiles/demo", "--configfile", *DEMO_SMALL],
        tmp_path / "local.log", snakemake_env(local),
    )
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    run_workflow(
        cluster, ["--profile", "profiles/slurm-demo"],
        tmp_path / "slurm.log", snakemake_env(cluster, SLURM_CONF=str(slurm_conf)),
    )

    table = "results/table/results.csv"
    assert (cluster / table).read_text() == (local / table).read_text()

    jobs = sacct_jobs(slurm_conf, since)
    rules = {job["comment"].removeprefix("rule_").split("_wildcards_")[0] for job in jobs}
    assert {"pretrain_clip", "finetune", "score_benchmark", "render_table"} <= rules
    assert [job for job in jobs if job["state"] != "COMPLETED"] == []
    finetune = [job for job in jobs if job["comment"].startswith("rule_finetune")]
    assert len(finetune) == 2
    for job in finetune:
        assert "gres/gpu=1" in job["tres"]
