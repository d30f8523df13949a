# Stage 6: zero-shot scoring. Each image set is embedded once per model and shared by every
# benchmark that uses it; each (model, benchmark) pair is then its own job.


rule list_images:
    input:
        image_set_data,
    output:
        "results/benchmarks/images/{image_set}.txt",
    params:
        settings=as_json(config["eval"]),
        root=DATA_ROOT,
    log:
        "logs/list_images/{image_set}.log",
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip list-images --image-set {wildcards.image_set} --data-root {params.root}"
        " --settings {params.settings:q} --out {output} 2> {log}"


rule embed_images:
    input:
        model="results/models/{model}/model.safetensors",
        images=rules.list_images.output,
    output:
        "results/embeddings/{model}/{image_set}.safetensors",
    params:
        model=lambda wildcards, input: parent(input.model),
        root=lambda wildcards: f"{DATA_ROOT}/{config['eval']['image_roots'][wildcards.image_set]}",
        batch_size=config["eval"]["batch_size"],
    log:
        "logs/embed_images/{model}/{image_set}.log",
    benchmark:
        "benchmarks/embed_images/{model}/{image_set}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "read-clip embed-images --model-dir {params.model} --image-list {input.images}"
        " --image-root {params.root} --batch-size {params.batch_size} --workers {threads}"
        " --out {output} 2> {log}"


rule score_benchmark:
    input:
        unpack(benchmark_embeddings),
        data=benchmark_data,
        model="results/models/{model}/model.safetensors",
    output:
        scores="results/scores/{model}/{benchmark}.parquet",
        summary="results/scores/{model}/{benchmark}.json",
    params:
        settings=as_json(config["eval"]),
        model=lambda wildcards, input: parent(input.model),
        root=DATA_ROOT,
        embeddings=embeddings_args,
    log:
        "logs/score_benchmark/{model}/{benchmark}.log",
    benchmark:
        "benchmarks/score_benchmark/{model}/{benchmark}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "read-clip score-benchmark --benchmark {wildcards.benchmark} --model-name {wildcards.model}"
        " --model-dir {params.model} --data-root {params.root} --settings {params.settings:q}"
        " --embeddings {params.embeddings} --out-scores {output.scores}"
        " --out-summary {output.summary} 2> {log}"


# The forgetting check: COCO Karpathy test retrieval, one job per model.
rule score_retrieval:
    input:
        retrieval_data,
        model="results/models/{model}/model.safetensors",
        karpathy=KARPATHY_JSON,
    output:
        "results/retrieval/{model}.json",
    params:
        model=lambda wildcards, input: parent(input.model),
        batch_size=config["eval"]["batch_size"],
    log:
        "logs/score_retrieval/{model}.log",
    benchmark:
        "benchmarks/score_retrieval/{model}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "read-clip score-retrieval --model-dir {params.model} --karpathy {input.karpathy} --split test"
        " --batch-size {params.batch_size} --workers {threads} --out {output} 2> {log}"
