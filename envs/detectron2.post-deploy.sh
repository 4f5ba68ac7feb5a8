#!/usr/bin/env bash
# Run by Snakemake (`--sdm conda`) inside the env of detectron2.yaml right after creating it
# (https://snakemake.readthedocs.io/en/stable/snakefiles/deployment.html#providing-post-deployment-scripts).
# detectron2's setup.py imports torch, so it is built without build isolation against the
# env's torch; the commit is the one this project tests (see docs/detectron2.md).
set -euo pipefail
python -m pip install --no-build-isolation 'detectron2 @ git+https://github.com/facebookresearch/detectron2.git@02b5c4e295e990042a714712c21dc79b731e8833'
