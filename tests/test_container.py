"""The container image definition agrees with the lock file and the conda environment."""

import re

import yaml

from read_clip.config import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
LOCK = REPO_ROOT / "requirements.lock"
CONDA = REPO_ROOT / "envs" / "read-clip.yaml"


def instructions():
    """The Dockerfile's instructions as (keyword, arguments), continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(arguments.split())))
    return result


def lock_pins():
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_base_python_matches_conda():
    spec = yaml.safe_load(CONDA.read_text(encoding="utf-8"))
    conda_python = next(d for d in spec["dependencies"] if isinstance(d, str) and d.startswith("python="))
    base = next(arguments for keyword, arguments in instructions() if keyword == "FROM")
    assert conda_python == "python=3.11"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base


def test_lock_copied_then_installed():
    steps = instructions()
    copy = steps.index(("COPY", "requirements.lock ./"))
    install = steps.index(("RUN", "pip install -r requirements.lock"))
    assert copy < install


def test_package_installed_without_deps():
    runs = [arguments for keyword, arguments in instructions() if keyword == "RUN"]
    package = [run for run in runs if "pip install --no-deps" in run]
    assert len(package) == 1
    assert package[0].startswith("pip install --no-deps --no-build-isolation -e . ")


def test_no_pins_beside_lock():
    # A package pinned in a RUN line must carry the lock's version, and no RUN line may install
    # from a requirements file other than the lock.
    pins = lock_pins()
    runs = " ".join(arguments for keyword, arguments in instructions() if keyword == "RUN")
    for pin in re.findall(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", runs):
        assert pin in pins, f"{pin} in the Dockerfile differs from requirements.lock"
    for requirement_file in re.findall(r"-r\s+(\S+)", runs):
        assert requirement_file == "requirements.lock"
