# bongain: measure and predict best-of-N gains.
# Default config: config/config.yaml (the embedded, offline default). Another config replaces it
# entirely: snakemake --configfile config/other.yaml


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/posttrain.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/grade.smk"
include: "workflow/rules/orm.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/gains.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/allocation.smk"
include: "workflow/rules/report.smk"


# Light or internet-bound jobs run inside the snakemake process (on a cluster: the login node):
# downloads and hub datasets need the internet, features and gains take a second each.
localrules:
    download,
    task_split,
    features,
    gains,


# Before a cluster run submits its first job: refuse a hub cache the compute nodes may not see or that
# would fill the home quota, and take the hub token out of the environment every job inherits
# (sbatch --export=ALL); the in-process download jobs keep it (bongain.hub).
onstart:
    if workflow.non_local_exec:
        cluster_run_checks()


rule all:
    default_target: True
    input:
        f"{RESULTS}/report/report.md",
