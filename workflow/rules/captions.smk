# Stage 2: hard negatives (spaCy swaps) and sibling-caption paraphrases, one Parquet shard per job,
# plus model-generated paraphrases per shard when captions.generator.enabled is true.

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


rule generate_paraphrases:
    input:
        negatives=rules.make_negatives.output.negatives,
    output:
        # The command keeps its progress beside this file, in shard-{shard}.parquet.partial,
        # so a killed job resumes from its last checkpoint.
        paraphrases="results/captions/generated/shard-{shard}.parquet",
    params:
        settings=generator_settings,
    log:
        "logs/generate_paraphrases/shard-{shard}.log",
    benchmark:
        "benchmarks/generate_paraphrases/shard-{shard}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
        # The command uses a GPU when torch finds one and runs on the CPU otherwise.
        gpu=1,
    shell:
        "read-clip generate-paraphrases --negatives {input.negatives}"
        " --settings {params.settings:q} --out {output.paraphrases} 2> {log}"


# Paraphrase shards the trainer and the report read: the sibling captions, plus the generated
# paraphrases when the generator is enabled.
PARAPHRASE_SHARDS = expand(rules.make_negatives.output.paraphrases, shard=SHARDS)
if GENERATOR["enabled"]:
    PARAPHRASE_SHARDS += expand(rules.generate_paraphrases.output.paraphrases, shard=SHARDS)


rule gather_captions:
    input:
        negatives=expand(rules.make_negatives.output.negatives, shard=SHARDS),
        paraphrases=PARAPHRASE_SHARDS,
    output:
        report="results/captions/report.json",
    log:
        "logs/gather_captions/gather_captions.log",
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip gather-captions --negatives {input.negatives} --paraphrases {input.paraphrases}"
        " --out {output.report} 2> {log}"
