# Stage 7: the results table (Markdown, CSV) and bar chart, rebuilt whole from the summaries.


rule render_table:
    input:
        summaries=expand(
            "results/scores/{model}/{benchmark}.json", model=MODELS, benchmark=BENCHMARKS
        ),
    output:
        markdown=report("results/table/results.md", category="Results"),
        csv="results/table/results.csv",
        chart=report("results/table/results.png", category="Results"),
    params:
        models=MODELS,
    log:
        "logs/render_table/render_table.log",
    conda:
        "../../envs/read-clip.yaml"
    shell:
        "read-clip render-table --summaries {input.summaries} --models {params.models}"
        " --out-markdown {output.markdown} --out-csv {output.csv} --out-chart {output.chart} 2> {log}"
