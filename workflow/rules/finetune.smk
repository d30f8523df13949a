# Stage 5: fine-tune the base CLIP once per variant (negclip, read_clip, ablations).
# The command resumes from results/models/{variant}/checkpoints/ after an interruption (not an
# output, so Snakemake leaves it in place) and relaunches itself under torchrun for gpu > 1.


rule finetune:
    input:
        unpack(training_data),
        unpack(prepared_images),
        base="results/models/clip/model.safetensors",
        decoder=decoder_input,
        negatives=expand(rules.make_negatives.output.negatives, shard=SHARDS),
        paraphrases=PARAPHRASE_SHARDS,
        targets=rules.make_decoder_targets.output.targets,
        tokenizer=rules.make_decoder_targets.output.tokenizer,
    output:
        model="results/models/{variant}/model.safetensors",
        metrics="results/models/{variant}/metrics.jsonl",
        hf=directory("results/models/{variant}/hf"),
    params:
        settings=lambda wildcards: as_json(train_settings(wildcards.variant)),
        base=lambda wildcards, input: parent(input.base),
        decoder="results/models/decoder",
        out=lambda wildcards, output: parent(output.model),
        images=image_options,
    log:
        "logs/finetune/{variant}.log",
    benchmark:
        "benchmarks/finetune/{variant}.tsv"
    conda:
        "../../envs/read-clip.yaml"
    threads: 1 if DEMO else 8
    resources:
        mem_mb=4000 if DEMO else 64000,
        runtime=30 if DEMO else 240,
        gpu=0 if DEMO else 1,
    shell:
        "read-clip finetune --variant {wildcards.variant} --settings {params.settings:q}"
        " --base-model {params.base} --decoder {params.decoder} --karpathy {input.karpathy}"
        " --negatives {input.negatives} --paraphrases {input.paraphrases}"
        " --targets {input.targets} --tokenizer {input.tokenizer} {params.images} --out {params.out}"
        " --gpus {resources.gpu} --threads {threads} 2> {log}"
