# Stage 1 of the paper recipe: fetch every source of workflow/data_manifest.yaml, verify it and
# install it under DATA_ROOT in its upstream layout (one job per source); then decode the
# training images into shards and report which benchmark images are also training images.
# A job's output is the source's install record, written only after the whole install succeeded.

include: "download_inputs.smk"


rule download_source:
    output:
        f"{DATA_ROOT}/installed/{{source}}.json",
    params:
        # The source's manifest entry: editing it reruns this source's job and no other.
        entry=lambda wildcards: as_json(SOURCES[wildcards.source].as_record()),
        manifest=MANIFEST_FILE,
        # The install record is <root>/installed/<source>.json.
        root=lambda wildcards, output: parent(parent(output[0])),
        downloads=DOWNLOADS,
        options=DOWNLOAD_OPTIONS,
    wildcard_constraints:
        source="|".join(name for name in SOURCES if name != KARPATHY_SOURCE),
    log:
        "logs/download_source/{source}.log",
    benchmark:
        "benchmarks/download_source/{source}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    # Compute nodes of a cluster often have no internet access.
    localrule: True
    resources:
        mem_mb=1000,
        runtime=360,
    shell:
        "read-clip download --source {wildcards.source} --manifest {params.manifest}"
        " --root {params.root} --downloads {params.downloads} {params.options} 2> {log}"


rule download_karpathy_split:
    output:
        karpathy=KARPATHY_JSON,
        record=f"{DATA_ROOT}/installed/{KARPATHY_SOURCE}.json",
    params:
        entry=as_json(SOURCES[KARPATHY_SOURCE].as_record()),
        manifest=MANIFEST_FILE,
        root=lambda wildcards, output: parent(parent(output.record)),
        downloads=DOWNLOADS,
        options=DOWNLOAD_OPTIONS,
    log:
        "logs/download_karpathy_split/download_karpathy_split.log",
    conda:
        "../../envs/read-clip.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        f"read-clip download --source {KARPATHY_SOURCE} --manifest {{params.manifest}}"
        " --root {params.root} --downloads {params.downloads} {params.options} 2> {log}"


rule prepare_images:
    input:
        unpack(training_data),
    output:
        images="results/data/images/shard-{image_shard}.npy",
        index="results/data/images/shard-{image_shard}.parquet",
    params:
        settings=as_json({**training_selection(), "image_size": config["data"]["image_size"]}),
        shards=len(IMAGE_SHARDS),
    wildcard_constraints:
        image_shard=r"\d+",
    log:
        "logs/prepare_images/shard-{image_shard}.log",
    benchmark:
        "benchmarks/prepare_images/shard-{image_shard}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    # Shards are the unit of parallelism: two decoding threads per job were no faster than one
    # on a loaded 2-core machine (135 images/s on one thread at 640x480).
    threads: 1
    resources:
        # One shard's pixels stay in memory until written: 113,287 / 32 shards x 150 kB at 224 px.
        mem_mb=3000,
        runtime=120,
    shell:
        "read-clip prepare-images shard --karpathy {input.karpathy} --settings {params.settings:q}"
        " --shard {wildcards.image_shard} --shards {params.shards} --threads {threads}"
        " --out-images {output.images} --out-index {output.index} 2> {log}"


rule report_prepared_images:
    input:
        images=expand(rules.prepare_images.output.images, image_shard=IMAGE_SHARDS),
        indexes=expand(rules.prepare_images.output.index, image_shard=IMAGE_SHARDS),
    output:
        "results/data/images/report.json",
    log:
        "logs/report_prepared_images/report_prepared_images.log",
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip prepare-images report --images {input.images} --indexes {input.indexes}"
        " --out {output} 2> {log}"


rule report_leakage:
    input:
        karpathy=KARPATHY_JSON,
        annotations=benchmark_annotations(),
    output:
        json="results/data/leakage.json",
        markdown="results/data/leakage.md",
    params:
        settings=as_json(
            {
                **training_selection(),
                "benchmarks": BENCHMARKS,
                "image_roots": config["eval"]["image_roots"],
                "valse_datasets": config["eval"]["valse_datasets"],
            }
        ),
        # KARPATHY_JSON is <root>/coco/dataset_coco.json.
        root=lambda wildcards, input: parent(parent(input.karpathy)),
    log:
        "logs/report_leakage/report_leakage.log",
    conda:
        "../../envs/read-clip.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "read-clip report-leakage --karpathy {input.karpathy} --data-root {params.root}"
        " --settings {params.settings:q} --out-json {output.json} --out-markdown {output.markdown}"
        " 2> {log}"


# Built by `all` besides the results table: the prepared shards (through their report), the
# leakage report, and the sources kept for users that no step reads.
DATA_TARGETS = [
    *rules.report_prepared_images.output,
    *rules.report_leakage.output,
    *install_records(sources_used_by(SOURCES, "reference")),
]
