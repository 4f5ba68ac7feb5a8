"""segsubmit: model + COCO image set -> submission.csv per split and mIoU where GT exists.

Run: snakemake --cores 4 --resources gpu=1   (see README.md)
"""

import os
import sys
import time

from snakemake.utils import min_version, validate

min_version("9.0")

# The workflow's own package, for this process and every job (conda envs hold only its deps).
PACKAGE_SOURCE = os.path.join(str(workflow.current_basedir), "src")
sys.path.insert(0, PACKAGE_SOURCE)
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [PACKAGE_SOURCE, os.environ.get("PYTHONPATH")])
)

from segsubmit.config import SCHEMA_PATH, check_config, coerce_config
from segsubmit.summary import checkpoint_note, write_run_summary

RUN_STARTED = time.time()


configfile: os.path.join(str(workflow.current_basedir), "config/config.yaml")


coerce_config(config)  # `--config data={shards: 2}` passes '2'
validate(config, str(SCHEMA_PATH), set_default=True)
check_config(config)


include: "workflow/rules/common.smk"


envvars:
    "PYTHONPATH",
    SHARDS_VARIABLE,


include: "workflow/rules/demo.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/resize.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


container: config["container"]


if getattr(workflow.output_settings, "dryrun", False):
    for split in SPLITS:
        if not os.path.exists(result(f"{split}/manifest.json")):
            print(checkpoint_note(split, coco_json(split), len(SHARDS)))


onsuccess:
    write_run_summary(config, RUN_STARTED, failed=False)


onerror:
    write_run_summary(config, RUN_STARTED, failed=True)


rule all:
    default_target: True
    input:
        expand(result("{split}/submission.csv"), split=SPLITS),
        expand(result("{split}/submission.valid.json"), split=SPLITS),
        expand(
            result("{split}/score/{size}.json"), split=SCORED_SPLITS, size=SCORE_SIZES
        ),
        expand(result("{split}/report/scores.html"), split=SCORED_SPLITS),
        result("report/runtimes.png"),
