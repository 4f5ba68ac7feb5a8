"""Stages that need no model must not pay for importing torch (seconds on a cold machine)."""

import subprocess
import sys

STAGES_WITHOUT_TORCH = """
import sys
import numpy as np
from segsubmit import ground_truth, manifest, metrics, resize, submission  # the stage modules
from segsubmit.metrics import score_images
from segsubmit.resize import resize_label_maps

resize_label_maps([np.zeros((8, 8), np.uint8)], (4, 4), "albumentations")
score_images([np.zeros((4, 4), np.uint8)], [np.zeros((4, 4), np.uint8)], 2)
print(sorted(name for name in sys.modules if name == "torch" or name.startswith("torch.")))
"""


def test_manifest_resize_submission_score_do_not_import_torch():
    result = subprocess.run(
        [sys.executable, "-c", STAGES_WITHOUT_TORCH], capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
