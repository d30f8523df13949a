"""The config schema: the recipe and the demo preset validate, and a misspelled key is named."""

import re
import subprocess
import sys

import pytest
import yaml

from read_clip.config import REPO_ROOT, ConfigError, load_config, load_schema, validate

CONFIG = REPO_ROOT / "config.yaml"
DEMO = REPO_ROOT / "workflow" / "presets" / "demo.yaml"


def walk_schema(node, path="schema"):
    """Yield (path, node) for every property schema, recursing into objects and $defs."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from walk_schema(child, f"{path}.{name}")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield f"{path}.*", extra
        yield from walk_schema(extra, f"{path}.*")
    for name, child in node.get("$defs", {}).items():
        yield from walk_schema(child, f"{path}.$defs.{name}")


def test_recipe_config_valid():
    config = load_config([CONFIG])
    assert config["seed"] == 2025


def test_demo_preset_valid():
    config = load_config([CONFIG, DEMO])
    assert config["data"]["source"] == "demo"
    assert config["train"]["variants"]["read_clip"] == {"neg": 1.0, "rec": 0.1, "align": 0.5}


def test_recipe_matches_paper_weights():
    variants = load_config([CONFIG])["train"]["variants"]
    assert variants["read_clip"] == {"neg": 1.0, "rec": 0.1, "align": 0.5}
    assert variants["negclip"] == {"neg": 1.0, "rec": 0.0, "align": 0.0}


def test_unknown_key_named():
    config = load_config([CONFIG])
    config["train"]["learning_rate"] = 1e-5
    with pytest.raises(ConfigError, match="learning_rate"):
        validate(config)


def test_wrong_type_named():
    config = load_config([CONFIG])
    config["eval"]["tie_policy"] = "loose"
    with pytest.raises(ConfigError, match=r"eval\.tie_policy"):
        validate(config)


def test_every_key_described_and_typed():
    schema = load_schema()
    for path, node in walk_schema(schema):
        assert "description" in node, f"{path} has no description"
        assert "type" in node or "$ref" in node, f"{path} has no type"


def test_every_object_closed():
    schema = load_schema()
    nodes = [("schema", schema), *walk_schema(schema)]
    for path, node in nodes:
        if node.get("type") == "object":
            assert "additionalProperties" in node, f"{path} allows unknown keys"
            assert node["additionalProperties"] is not True, f"{path} allows unknown keys"


def test_every_config_key_commented():
    """Every setting (top-level scalars and section keys) has a comment above it or inline."""
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    uncommented = []
    for index, line in enumerate(lines):
        match = re.match(r"^( {0,2})([a-z_]+):(.*)$", line)
        if not match:
            continue
        indent, key, rest = match.groups()
        is_section = not indent and not rest.strip()
        if is_section:
            continue
        previous = lines[index - 1].strip() if index else ""
        if not (previous.startswith("#") or "#" in rest):
            uncommented.append(key)
    assert uncommented == []


def test_snakemake_rejects_misspelled_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"epoches": 3}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--quiet", "rules"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "epoches" in result.stdout + result.stderr
