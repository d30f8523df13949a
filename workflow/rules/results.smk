# Stage 7: the results table (Markdown, CSV) and bar chart, rebuilt whole from the summaries.


rule render_table:
    input:
        summaries=expand(
            "results/scores/{model}/{benchmark}.json", model=MODELS, benchmark=BENCHMARKS
        ),
        retrieval=expand(rules.score_retrieval.output, model=MODELS),
    output:
        markdown=report("results/table/results.md", category="Results"),
        csv="results/table/results.csv",
        chart=report("results/table/results.png", category="Results"),
        retrieval_markdown="results/table/retrieval.md",
        retrieval_csv="results/table/retrieval.csv",
    params:
        models=MODELS,
    log:
        "logs/render_table/render_table.log",
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip render-table --summaries {input.summaries} --models {params.models}"
        " --retrieval {input.retrieval} --out-retrieval-markdown {output.retrieval_markdown}"
        " --out-retrieval-csv {output.retrieval_csv}"
        " --out-markdown {output.markdown} --out-csv {output.csv} --out-chart {output.chart} 2> {log}"


rule render_report:
    input:
        summaries=expand(
            "results/scores/{model}/{benchmark}.json", model=MODELS, benchmark=BENCHMARKS
        ),
        scores=expand(
            "results/scores/{model}/{benchmark}.parquet", model=MODELS, benchmark=BENCHMARKS
        ),
        metrics=expand("results/models/{model}/metrics.jsonl", model=TRAINED_MODELS),
        models=expand("results/models/{model}/model.safetensors", model=MODELS),
        captions=rules.gather_captions.output.report,
    output:
        tables=report("results/report/tables.html", caption="../report/tables.rst", category="Results"),
        markdown="results/report/tables.md",
        latex="results/report/tables.tex",
        csv=multiext("results/report/", "headline.csv", "vl_compo.csv", "published.csv",
                     "differences.csv", "subsets.csv", "seeds.csv"),
        bars=report("results/report/bars.png", caption="../report/bars.rst", category="Plots"),
        bars_pdf="results/report/bars.pdf",
        training=report("results/report/training.png", caption="../report/training.rst", category="Plots"),
        training_pdf="results/report/training.pdf",
        summary=report("results/report/summary.html", caption="../report/summary.rst", category="Run"),
        summary_md="results/report/summary.md",
    params:
        models=MODELS,
        model_dirs=lambda wildcards, input: [parent(path) for path in input.models],
        settings=as_json({"seed": config["seed"], **config["report"], "seed_groups": SEED_GROUPS}),
        out=lambda wildcards, output: parent(output.tables),
    log:
        "logs/render_report/render_report.log",
    benchmark:
        "benchmarks/render_report/render_report.tsv"
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip render-report --summaries {input.summaries} --scores {input.scores}"
        " --models {params.models} --metrics {input.metrics} --model-dirs {params.model_dirs}"
        " --caption-report {input.captions} --settings {params.settings:q} --out-dir {params.out} 2> {log}"
