"""segsubmit: model + COCO image set -> submission.csv per split and mIoU where GT exists.

Run: snakemake --cores 4 --resources gpu=1   (see README.md)
"""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config/config.yaml")


validate(config, os.path.join(workflow.basedir, "config/schema.yaml"), set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/resize.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/score.smk"


rule all:
    input:
        expand(RESULTS + "/{split}/submission.csv", split=SPLITS),
        expand(RESULTS + "/{split}/submission.valid.json", split=SPLITS),
        expand(RESULTS + "/{split}/score.json", split=SCORED_SPLITS),
        expand(
            RESULTS + "/{split}/score_input_size.json",
            split=SCORED_SPLITS if config["score"]["at_input_size"] else [],
        ),
    default_target: True
