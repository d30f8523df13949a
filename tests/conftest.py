"""Shared fixtures. Tests run offline: hub lookups must fail at once, never retry."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def annotations_dir() -> Path:
    """The real upstream annotation files, kept in `shared/` beside the checkout."""
    root = Path(os.environ.get("READ_CLIP_SHARED", REPO_ROOT.parent / "shared"))
    path = root / "benchmark_annotations"
    assert path.is_dir(), f"{path} not found: set READ_CLIP_SHARED to the folder holding benchmark_annotations/"
    return path
