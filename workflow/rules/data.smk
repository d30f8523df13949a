# Stage 1: the training data and the benchmark files, in their upstream layouts under DATA_ROOT.
# The demo generates them; the paper recipe downloads them (download.smk).

if DEMO:

    rule make_demo_world:
        output:
            karpathy=KARPATHY_JSON,
            manifest=f"{DATA_ROOT}/world.json",
        params:
            settings=as_json({**config["demo"], "seed": config["seed"]}),
            root=lambda wildcards, output: parent(output.manifest),
        log:
            "logs/make_demo_world/make_demo_world.log",
        benchmark:
            "benchmarks/make_demo_world/make_demo_world.tsv"
        conda:
            "../../envs/read-clip.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "read-clip make-demo-world --settings {params.settings:q} --out {params.root} 2> {log}"

else:

    include: "download.smk"
