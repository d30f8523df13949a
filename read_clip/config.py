"""Load, merge and validate the workflow configuration outside Snakemake.

The workflow validates the same schema at parse time; this module serves the commands a user runs
by hand (`read-clip evaluate --config ...`) and the tests.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration file or value that does not fit the schema."""


def merge(base: dict, override: dict) -> dict:
    """Merge `override` into a copy of `base`, recursing into nested mappings as Snakemake does."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(config: dict, source: str = "configuration") -> dict:
    """Raise ConfigError naming the offending key path when `config` does not fit the schema."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            lines.append(f"  {where}: {error.message}")
        raise ConfigError(
            f"invalid {source}:\n" + "\n".join(lines)
            + f"\nSee {SCHEMA_PATH.relative_to(REPO_ROOT)} for the keys and their types."
        )
    return config


def load_config(paths: list[str | Path]) -> dict:
    """Read YAML files in order, later ones overriding earlier ones, and validate the result."""
    config: dict[str, Any] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
        config = merge(config, data)
    names = ", ".join(str(p) for p in paths)
    return validate(config, source=f"configuration from {names}")


def parse_settings(text: str, what: str = "--settings") -> dict:
    """Decode the JSON settings a workflow rule passes to a command."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{what} is not valid JSON ({error}): {text[:200]!r}") from error
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value
