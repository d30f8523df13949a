# Stage 3: token ids of the reconstruction targets, in the decoder's vocabulary.


rule make_decoder_targets:
    input:
        # Captions only: these stages never read the images.
        karpathy=KARPATHY_JSON,
    output:
        tokenizer=directory("results/decoder/tokenizer"),
        targets="results/decoder/targets.parquet",
    params:
        settings=as_json({**training_selection(), **config["decoder"]}),
    log:
        "logs/make_decoder_targets/make_decoder_targets.log",
    benchmark:
        "benchmarks/make_decoder_targets/make_decoder_targets.tsv"
    conda:
        "../../envs/read-clip.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "read-clip make-decoder-targets --karpathy {input.karpathy} --settings {params.settings:q}"
        " --out-tokenizer {output.tokenizer} --out-targets {output.targets} 2> {log}"
