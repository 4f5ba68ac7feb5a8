"""segsubmit: model + COCO image set -> submission.csv per split and mIoU where GT exists.

Run: snakemake --cores 4 --resources gpu=1   (see README.md)
"""

import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The workflow's own package, for this process and every job (conda envs hold only its deps).
PACKAGE_SOURCE = os.path.join(workflow.basedir, "src")
sys.path.insert(0, PACKAGE_SOURCE)
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [PACKAGE_SOURCE, os.environ.get("PYTHONPATH")])
)


envvars:
    "PYTHONPATH",


configfile: os.path.join(workflow.basedir, "config/config.yaml")


validate(config, os.path.join(workflow.basedir, "config/schema.yaml"), set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/resize.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        expand(result("{split}/submission.csv"), split=SPLITS),
        expand(result("{split}/submission.valid.json"), split=SPLITS),
        expand(result("{split}/score.json"), split=SCORED_SPLITS),
        expand(
            result("{split}/score_input_size.json"),
            split=SCORED_SPLITS if config["score"]["at_input_size"] else [],
        ),
        expand(result("{split}/report/scores.html"), split=SCORED_SPLITS),
        result("report/runtimes.png"),
