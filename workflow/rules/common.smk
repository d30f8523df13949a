# Names and helpers shared by the rule files. Logic lives in the read_clip package.

import json

from read_clip.benchmarks.images import image_sets_for

DATA_ROOT = config["data"]["root"]
DEMO = config["data"]["source"] == "demo"
VARIANTS = list(config["train"]["variants"])
# Row order of the results table: the base model first, then the fine-tuned variants.
MODELS = ["clip", *VARIANTS]
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
    variant="|".join(VARIANTS) or "(?!)",
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
