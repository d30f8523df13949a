"""The environment files agree: the conda file pins exactly the lock file's packages."""

import re

import yaml

from read_clip.config import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"
CONDA = REPO_ROOT / "envs" / "read-clip.yaml"


def lock_pins():
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_lock_pins_exact():
    for pin in lock_pins():
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+!\-]+", pin), f"not an exact pin: {pin}"


def test_torch_pair_pinned():
    pins = lock_pins()
    assert "torch==2.14.1" in pins
    assert "torchvision==0.29.1" in pins


def test_conda_pins_equal_lock():
    spec = yaml.safe_load(CONDA.read_text(encoding="utf-8"))
    pip_section = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict))
    conda_pins = {entry for entry in pip_section if "==" in entry}
    assert conda_pins == lock_pins()


def test_direct_dependencies_locked():
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = {pin.split("==")[0].lower().replace("_", "-") for pin in lock_pins()}
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=\[ ]", requirement)[0].lower().replace("_", "-")
        assert name in locked, f"{name} is a dependency but not in requirements.lock"
