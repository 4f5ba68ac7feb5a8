"""MMSegmentation 1.x models (a config `.py` + checkpoint), predicting exactly what
`mmseg.apis.inference_model` would, in batches (see `mmseg_model`)."""

from ..errors import SegsubmitError
from ..plugins import Backend, register_backend

MMSEG_VERSION = "1.2.2"  # what tools/install_mmseg.sh installs and the tests run against
INSTALL_COMMAND = "bash tools/install_mmseg.sh <python>"
# mmcv 2.1.0 (mmseg 1.2.2 asserts mmcv < 2.2.0) is source-only on PyPI and does not build with
# current setuptools/torch as it is: the script builds a patched wheel, so no pip extra can.
INSTALL_HINT = (
    f"after `pip install -e .`, run `{INSTALL_COMMAND}` with the venv's python, e.g. "
    "`bash tools/install_mmseg.sh .venv/bin/python` (builds mmcv 2.1.0's CPU ops once, ~9 min on "
    "2 cores; needs g++; see docs/backends.md)"
)


@register_backend
class MMSegBackend(Backend):
    name = "mmseg"
    options = {
        "config_file": {
            "type": ["string", "null"],
            "default": None,
            "description": (
                "the model's MMSegmentation config (.py, as training dumps it): its model, "
                "data_preprocessor, test_cfg and test_pipeline decide the predictions"
            ),
        },
        "cfg_options": {
            "type": "object",
            "default": {},
            "description": (
                "overrides merged into the config, as mmseg's --cfg-options "
                "({model.test_cfg.mode: slide, model.test_cfg.crop_size: [512, 512], ...})"
            ),
        },
        "tta": {
            "type": "boolean",
            "default": False,
            "description": (
                "test-time augmentation as mmseg's tools/test.py --tta runs it: the config's "
                "tta_pipeline (TestTimeAug: its Resize scale_factor per img_ratios x its flips) "
                "merged by SegTTAModel (mean of the views' softmax); instead of infer.tta"
            ),
        },
    }
    file_options = ("config_file",)
    conda_env = "mmseg.yaml"
    packages = ("torch", "mmsegmentation", "mmcv", "mmengine")
    install_hint = INSTALL_HINT

    @classmethod
    def check_options(cls, section):
        if not section["config_file"]:
            raise SegsubmitError(
                "model.mmseg.config_file: the mmseg backend needs the model's config .py"
            )

    @staticmethod
    def host_transform(settings, device):
        from .mmseg_model import mmseg_host_transform

        return mmseg_host_transform(settings)

    @staticmethod
    def load(settings, device):
        from .mmseg_model import load_mmseg

        return load_mmseg(settings, device)
