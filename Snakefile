# READ-CLIP: fine-tune CLIP with a frozen text decoder and two auxiliary losses, then score it
# and its baselines on five compositional benchmarks.
#
#   snakemake --cores 8 all                                            # the paper recipe
#   snakemake --cores 2 --configfile workflow/presets/demo.yaml all    # the demo (see Makefile)

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


# Used only with --sdm apptainer; an empty image leaves jobs in the current environment.
container: config["container"] or ""


# Pipeline order: data -> captions -> decoder targets -> base models -> fine-tuning -> evaluation -> table.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/captions.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/base_models.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/results.smk"


rule all:
    input:
        rules.render_table.output,
        rules.render_report.output,
        rules.gather_captions.output,
        DATA_TARGETS,
    default_target: True
