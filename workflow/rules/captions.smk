# Stage 2: hard negatives (spaCy swaps) and sibling-caption paraphrases, one Parquet shard per job.


rule make_negatives:
    input:
        # Captions only: these stages never read the images.
        karpathy=KARPATHY_JSON,
    output:
        negatives="results/captions/negatives/shard-{shard}.parquet",
        paraphrases="results/captions/paraphrases/shard-{shard}.parquet",
    params:
        settings=as_json(
            {
                **training_selection(),
                "negative_pool_size": config["captions"]["negative_pool_size"],
                "swap_tries": config["captions"]["swap_tries"],
                "spacy_model": config["captions"]["spacy_model"],
                "spacy_batch_size": config["captions"]["spacy_batch_size"],
            }
        ),
        shards=len(SHARDS),
    log:
        "logs/make_negatives/shard-{shard}.log",
    benchmark:
        "benchmarks/make_negatives/shard-{shard}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "read-clip make-negatives --karpathy {input.karpathy} --shard {wildcards.shard}"
        " --shards {params.shards} --settings {params.settings:q}"
        " --out-negatives {output.negatives} --out-paraphrases {output.paraphrases} 2> {log}"


rule gather_captions:
    input:
        negatives=expand(rules.make_negatives.output.negatives, shard=SHARDS),
        paraphrases=expand(rules.make_negatives.output.paraphrases, shard=SHARDS),
    output:
        report="results/captions/report.json",
    log:
        "logs/gather_captions/gather_captions.log",
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip gather-captions --negatives {input.negatives} --paraphrases {input.paraphrases}"
        " --out {output.report} 2> {log}"
