# Names and helpers shared by the rule files. Logic lives in the read_clip package.

import json
import os

from read_clip.benchmarks.images import image_sets_for

DATA_ROOT = config["data"]["root"]
DEMO = config["data"]["source"] == "demo"
VARIANTS = list(config["train"]["variants"])
# Extra training runs of every variant with another seed, named "<variant>_seed<N>"; the report
# shows the mean and standard deviation over each variant's runs.
SEED_RUNS = {
    f"{variant}_seed{seed}": (variant, seed)
    for variant in VARIANTS
    for seed in config["train"]["extra_seeds"]
}
SEED_GROUPS = {
    variant: [variant, *[name for name, (base, _) in SEED_RUNS.items() if base == variant]]
    for variant in VARIANTS
} if SEED_RUNS else {}
FINETUNED = [*VARIANTS, *SEED_RUNS]
CHECKPOINTS = config["checkpoints"].get("specs", {}) if config["checkpoints"]["enabled"] else {}
# Row order of the results table: the base model, the fine-tuned variants, then published checkpoints.
MODELS = ["clip", *FINETUNED, *CHECKPOINTS]
# Models with training curves: the demo pretrains its base CLIP, the recipe downloads it.
TRAINED_MODELS = ["clip", *FINETUNED] if DEMO else FINETUNED
BENCHMARKS = config["eval"]["benchmarks"]
SHARDS = list(range(config["captions"]["shards"]))
IMAGE_SETS = {name: image_sets_for(name, config["eval"]) for name in BENCHMARKS}

if config["model"]["pretrained"] == "demo" and "demo_pretrain" not in config:
    raise ValueError(
        "model.pretrained is 'demo' but the config has no demo_pretrain section; "
        "run with --configfile workflow/presets/demo.yaml or set model.pretrained to an open_clip tag"
    )


wildcard_constraints:
    model="|".join(MODELS),
    variant="|".join(FINETUNED) or "(?!)",
    checkpoint="|".join(CHECKPOINTS) or "(?!)",
    benchmark="|".join(BENCHMARKS),
    shard=r"\d+",


def as_json(value):
    """Pass config values to a command as one JSON argument; as a param, a change reruns the rule."""
    return json.dumps(value, sort_keys=True)


def training_selection():
    """The keys every stage uses to select the same training images."""
    return {
        "seed": config["seed"],
        "train_splits": config["data"]["train_splits"],
        "max_train_images": config["data"]["max_train_images"],
    }


KARPATHY_JSON = f"{DATA_ROOT}/coco/dataset_coco.json"


def parent(path):
    """The folder of an output or input file, for commands that write or read a whole directory."""
    return os.path.dirname(str(path))


# Inputs that guarantee the data a stage reads exist. The demo world is one job; the paper
# recipe's downloads and extractions are defined in download.smk.
if DEMO:
    DATA_TARGETS = []

    def training_data(wildcards=None):
        return {"karpathy": KARPATHY_JSON}

    def benchmark_data(wildcards):
        return [f"{DATA_ROOT}/world.json"]

    def image_set_data(wildcards):
        return [f"{DATA_ROOT}/world.json"]

    def retrieval_data(wildcards):
        return [f"{DATA_ROOT}/world.json"]

    def checkpoint_data(wildcards):
        return []


def checkpoint_spec(wildcards):
    """The spec of a published checkpoint as fetch-model takes it: a local path made absolute
    under data.root, and the workflow-only `download` key removed."""
    spec = {key: value for key, value in CHECKPOINTS[wildcards.checkpoint].items() if key != "download"}
    if spec["kind"] == "open_clip_checkpoint":
        spec["source"] = os.path.join(DATA_ROOT, spec["source"])
    return as_json(spec)


# Captions.

GENERATOR = config["captions"]["generator"]


def generator_settings(wildcards):
    """Return the generator's settings as JSON. A params function, because Snakemake would take
    the "{caption}" of a params string for a wildcard."""
    settings = {key: value for key, value in GENERATOR.items() if key != "enabled"}
    return as_json({"seed": config["seed"], **settings})


# Fine-tuning.


def train_settings(name):
    """Settings of one fine-tuning run: a variant, or a variant's extra seed run."""
    variant, run_seed = SEED_RUNS.get(name, (name, None))
    train = {
        key: value for key, value in config["train"].items() if key not in ("variants", "extra_seeds")
    }
    settings = {**training_selection(), "train": train, "weights": config["train"]["variants"][variant]}
    if run_seed is not None:
        settings["run_seed"] = run_seed
    return settings


def prepared_images(wildcards):
    """The prepared image shards the recipe trains from; the demo decodes its images in memory."""
    if DEMO:
        return {}
    shards = range(config["data"]["image_shards"])
    return {
        "image_shards": [f"results/data/images/shard-{shard}.npy" for shard in shards],
        "image_indexes": [f"results/data/images/shard-{shard}.parquet" for shard in shards],
    }


def image_options(wildcards, input):
    """The finetune options that name the prepared shards, empty for the demo."""
    if DEMO:
        return ""
    return "--image-shards {} --image-indexes {}".format(
        " ".join(input.image_shards), " ".join(input.image_indexes))


def decoder_input(wildcards):
    """The frozen decoder, only for variants that train with the reconstruction loss."""
    variant, _ = SEED_RUNS.get(wildcards.variant, (wildcards.variant, None))
    if config["train"]["variants"][variant]["rec"] > 0:
        return ["results/models/decoder/decoder.safetensors"]
    return []


# Evaluation.


def benchmark_embeddings(wildcards):
    """The shared image embeddings one benchmark reads, by image set."""
    return {
        image_set: f"results/embeddings/{wildcards.model}/{image_set}.safetensors"
        for image_set in IMAGE_SETS[wildcards.benchmark]
    }


def embeddings_args(wildcards, input):
    return " ".join(f"{name}={input[name]}" for name in IMAGE_SETS[wildcards.benchmark])
