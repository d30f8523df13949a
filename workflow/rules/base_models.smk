# Stage 4: the models fine-tuning starts from: the base CLIP (row "clip" of the table) and the
# frozen text decoder. The recipe fetches pretrained weights; the demo pretrains tiny stand-ins.

if DEMO:

    rule pretrain_clip:
        input:
            unpack(training_data),
        output:
            model="results/models/clip/model.safetensors",
            metrics="results/models/clip/metrics.jsonl",
        params:
            settings=as_json(
                {
                    **training_selection(),
                    "architecture": config["model"]["clip"],
                    "run": config["demo_pretrain"]["clip"],
                }
            ),
            out=lambda wildcards, output: parent(output.model),
        log:
            "logs/pretrain_clip/pretrain_clip.log",
        benchmark:
            "benchmarks/pretrain_clip/pretrain_clip.tsv"
        conda:
            "../../envs/read-clip.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        shell:
            "read-clip pretrain-clip --settings {params.settings:q} --karpathy {input.karpathy}"
            " --out {params.out} --threads {threads} 2> {log}"

    rule pretrain_decoder:
        input:
            unpack(training_data),
            base=rules.pretrain_clip.output.model,
            targets=rules.make_decoder_targets.output.targets,
            tokenizer=rules.make_decoder_targets.output.tokenizer,
        output:
            decoder="results/models/decoder/decoder.safetensors",
            metrics="results/models/decoder/metrics.jsonl",
        params:
            settings=as_json(
                {
                    **training_selection(),
                    "run": config["demo_pretrain"]["decoder"],
                    "decoder_config": config["demo_pretrain"]["decoder_config"],
                    "max_target_tokens": config["decoder"]["max_target_tokens"],
                }
            ),
            base=lambda wildcards, input: parent(input.base),
            out=lambda wildcards, output: parent(output.decoder),
        log:
            "logs/pretrain_decoder/pretrain_decoder.log",
        benchmark:
            "benchmarks/pretrain_decoder/pretrain_decoder.tsv"
        conda:
            "../../envs/read-clip.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        shell:
            "read-clip pretrain-decoder --settings {params.settings:q} --base-model {params.base}"
            " --karpathy {input.karpathy} --targets {input.targets} --tokenizer {input.tokenizer}"
            " --out {params.out} --threads {threads} 2> {log}"

else:

    rule fetch_clip:
        output:
            model="results/models/clip/model.safetensors",
        params:
            architecture=config["model"]["clip"],
            pretrained=config["model"]["pretrained"],
            cache=f"{DATA_ROOT}/weights/open_clip",
            out=lambda wildcards, output: parent(output.model),
        log:
            "logs/fetch_clip/fetch_clip.log",
        conda:
            "../../envs/read-clip.yaml"
        resources:
            mem_mb=4000,
            runtime=30,
        shell:
            "read-clip fetch-clip --architecture {params.architecture} --pretrained {params.pretrained}"
            " --cache-dir {params.cache} --out {params.out} 2> {log}"

    rule fetch_decoder:
        output:
            decoder="results/models/decoder/decoder.safetensors",
        params:
            source=config["model"]["decoder"],
            cache=f"{DATA_ROOT}/weights/huggingface",
            out=lambda wildcards, output: parent(output.decoder),
        log:
            "logs/fetch_decoder/fetch_decoder.log",
        conda:
            "../../envs/read-clip.yaml"
        resources:
            mem_mb=8000,
            runtime=30,
        shell:
            "read-clip fetch-decoder --source {params.source} --cache-dir {params.cache}"
            " --out {params.out} 2> {log}"


# Published checkpoints (config `checkpoints`), each turned into a model directory like the others.
rule fetch_checkpoint:
    input:
        checkpoint_data,
    output:
        model="results/models/{checkpoint}/model.safetensors",
    params:
        spec=checkpoint_spec,
        cache=f"{DATA_ROOT}/weights",
        out=lambda wildcards, output: parent(output.model),
    log:
        "logs/fetch_checkpoint/{checkpoint}.log",
    conda:
        "../../envs/read-clip.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "read-clip fetch-model --spec {params.spec:q} --cache-dir {params.cache} --out {params.out} 2> {log}"
