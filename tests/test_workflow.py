"""The workflow's job graph: one job per shard, per (model, benchmark), per (model, image set)."""

import subprocess
import sys

import yaml

from read_clip.config import REPO_ROOT, load_config

DEMO = ["config.yaml", "workflow/presets/demo.yaml"]


def job_counts(tmp_path, configfiles, target="all", override=None):
    """Return {rule: job count} of a forced dry run (the graph as if nothing existed yet)."""
    files = list(configfiles)
    if override is not None:
        path = tmp_path / "override.yaml"
        path.write_text(yaml.safe_dump(override))
        files.append(str(path))
    command = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "2",
               "--configfile", *files, "--quiet", "rules", "--", target]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = result.stdout.split("Job stats:")[1].splitlines()
    return {line.split()[0]: int(line.split()[1]) for line in stats[3:] if len(line.split()) == 2}


def test_demo_graph(tmp_path):
    config = load_config([REPO_ROOT / path for path in DEMO])
    jobs = job_counts(tmp_path, DEMO)
    models = 1 + len(config["train"]["variants"])
    assert jobs["make_negatives"] == config["captions"]["shards"]
    assert jobs["finetune"] == len(config["train"]["variants"])
    assert jobs["score_benchmark"] == models * len(config["eval"]["benchmarks"])
    assert jobs["score_retrieval"] == models
    assert jobs["make_demo_world"] == 1
    assert "download_source" not in jobs


def test_image_sets_embedded_once(tmp_path):
    jobs = job_counts(tmp_path, DEMO)
    # Each image set is embedded once per model, however many benchmarks read it.
    assert jobs["embed_images"] == 3 * jobs["list_images"]


def test_extra_seeds_add_runs(tmp_path):
    jobs = job_counts(tmp_path, DEMO, override={"train": {"extra_seeds": [7, 8]}})
    assert jobs["finetune"] == 2 * 3


def test_recipe_graph_offline(tmp_path):
    config = load_config([REPO_ROOT / "config.yaml"])
    jobs = job_counts(tmp_path, ["config.yaml"])
    assert jobs["fetch_clip"] == 1
    assert jobs["fetch_decoder"] == 1
    assert jobs["fetch_checkpoint"] == len(config["checkpoints"]["specs"])
    assert jobs["prepare_images"] == config["data"]["image_shards"]
    assert "make_demo_world" not in jobs
    assert "pretrain_clip" not in jobs
