# Container image of the pipeline: the lock file's packages and the read_clip package, for
# `snakemake --sdm apptainer` (each job's command runs inside the image) or for running the
# `read-clip` commands by hand. Build and convert for apptainer:
#   docker build -t read-clip:0.1.0 .
#   apptainer build read-clip.sif docker-daemon://read-clip:0.1.0
# The image holds no data, weights or results: the workflow's folder is bound in at run time.
# tests/test_container.py checks that the base Python matches envs/read-clip.yaml (3.11) and
# that the packages come from requirements.lock.
FROM python:3.11-slim-bookworm

# HF_HUB_OFFLINE is not set here: the fetch rules download weights from the hub.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/read-clip

# The pinned environment first, in its own layer, so that code changes reuse it. torch 2.14.1 is
# PyPI's CUDA 13 build, which also runs on the CPU; the nvidia-* pins are its CUDA libraries.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The package itself, without resolving dependencies again (the lock already installed them).
# Installed in place beside the workflow files, because `read-clip evaluate --config` reads the
# config schema and `read-clip download` the data manifest from the checkout's workflow/ folder.
COPY pyproject.toml README.md config.yaml Snakefile ./
COPY workflow ./workflow
COPY read_clip ./read_clip
RUN pip install --no-deps --no-build-isolation -e . \
    && read-clip --help >/dev/null

CMD ["read-clip", "--help"]
