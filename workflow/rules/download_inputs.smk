# Names and input functions of the paper recipe's data stage (download.smk), kept apart from its
# rules. Which files each stage needs follows from workflow/data_manifest.yaml.

from read_clip.data.manifest import (
    load_manifest,
    sources_for_folder,
    sources_used_by,
    training_sources,
)

# A plain path (not workflow.source_path, which points into a parse-time cache) for the jobs.
MANIFEST_FILE = os.path.join(workflow.basedir, "workflow", "data_manifest.yaml")
SOURCES = load_manifest(MANIFEST_FILE)
DOWNLOADS = os.path.normpath(os.path.join(DATA_ROOT, config["data"]["downloads"]))
# The Karpathy split has its own rule because the other stages name its JSON file as input.
KARPATHY_SOURCE = "karpathy_split"
IMAGE_SHARDS = list(range(config["data"]["image_shards"]))
DOWNLOAD_OPTIONS = "--keep-download" if config["data"]["keep_downloads"] else "--no-keep-download"


def install_records(sources):
    """The install records of `sources`, each once, in manifest order."""
    names = dict.fromkeys(source.name for source in sources)
    return [f"{DATA_ROOT}/installed/{name}.json" for name in names]


def training_data(wildcards=None):
    """The Karpathy split, and the COCO archives that hold the images of the training splits."""
    images = training_sources(SOURCES, config["data"]["train_splits"])
    return {"karpathy": KARPATHY_JSON, "images": install_records(images)}


def benchmark_data(wildcards):
    """Every source a benchmark reads: its annotation files and its images."""
    return install_records(sources_used_by(SOURCES, wildcards.benchmark))


def image_set_data(wildcards):
    """The sources that fill one image set's folder, and the annotations of the benchmarks using it.

    Listing an image set reads the annotations of every configured benchmark that uses it.
    """
    folder = config["eval"]["image_roots"][wildcards.image_set]
    images = sources_for_folder(SOURCES, folder)
    if not images:
        raise ValueError(
            f"no source in {MANIFEST_FILE} installs images into {DATA_ROOT}/{folder} "
            f"(image set {wildcards.image_set} of config eval.image_roots); add one or fix the folder"
        )
    annotations = [
        source
        for benchmark in BENCHMARKS
        if wildcards.image_set in IMAGE_SETS[benchmark]
        for source in sources_used_by(SOURCES, benchmark, role="annotations")
    ]
    return install_records(images + annotations)


def benchmark_annotations():
    """The annotation sources of every configured benchmark."""
    return install_records(
        source
        for benchmark in BENCHMARKS
        for source in sources_used_by(SOURCES, benchmark, role="annotations")
    )


def retrieval_data(wildcards):
    """The Karpathy test images (COCO val2014) of the retrieval check."""
    return install_records(sources_for_folder(SOURCES, config["eval"]["image_roots"]["coco_val2014"]))


def checkpoint_data(wildcards):
    """The manifest download of a published checkpoint stored as a local file, if any."""
    download = CHECKPOINTS[wildcards.checkpoint].get("download")
    return install_records([SOURCES[download]]) if download else []
