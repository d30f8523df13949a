# Stage 5: fine-tune the base CLIP once per variant (negclip, read_clip, ablations).


rule finetune:
    input:
        unpack(training_data),
        base="results/models/clip/model.safetensors",
        decoder=decoder_input,
        negatives=expand(rules.make_negatives.output.negatives, shard=SHARDS),
        paraphrases=PARAPHRASE_SHARDS,
        targets=rules.make_decoder_targets.output.targets,
        tokenizer=rules.make_decoder_targets.output.tokenizer,
    output:
        model="results/models/{variant}/model.safetensors",
        metrics="results/models/{variant}/metrics.jsonl",
    params:
        settings=lambda wildcards: as_json(train_settings(wildcards.variant)),
        base=lambda wildcards, input: parent(input.base),
        decoder="results/models/decoder",
        out=lambda wildcards, output: parent(output.model),
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
        " --targets {input.targets} --tokenizer {input.tokenizer} --out {params.out} --threads {threads} 2> {log}"
