# Stage 1: the training data and the benchmark files, in their upstream layouts under DATA_ROOT.
# The demo generates them; the paper recipe downloads them (download.smk).

if DEMO:

    rule make_demo_world:
        output:
            karpathy=KARPATHY_JSON,
            manifest=f"{DATA_ROOT}/world.json",
        params:
            settings=as_json({**config["demo"], "seed": config["seed"]}),
            root=DATA_ROOT,
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

    # The demo has nothing to prepare beyond the world itself.
    DATA_TARGETS = []

    def training_data(wildcards=None):
        return {"karpathy": KARPATHY_JSON}

    def benchmark_data(wildcards):
        return [f"{DATA_ROOT}/world.json"]

    def image_set_data(wildcards):
        return [f"{DATA_ROOT}/world.json"]

else:

    include: "download.smk"
