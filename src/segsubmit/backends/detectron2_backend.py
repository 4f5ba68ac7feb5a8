"""Detectron2 models (yacs `config.yaml` + checkpoint), predicting exactly what
`DefaultPredictor` would (see `detectron2_model`)."""

from ..errors import SegsubmitError
from ..plugins import Backend, register_backend

DETECTRON2_COMMIT = "02b5c4e295e990042a714712c21dc79b731e8833"  # the commit this project tests
DETECTRON2_REQUIREMENT = (
    f"detectron2 @ git+https://github.com/facebookresearch/detectron2.git@{DETECTRON2_COMMIT}"
)
# Two steps: detectron2's setup.py imports torch, so it builds only without build isolation,
# after torch (installed with segsubmit) is there.
INSTALL_COMMAND = f"pip install --no-build-isolation '{DETECTRON2_REQUIREMENT}'"
INSTALL_HINT = (
    f"after `pip install -e .`, run `{INSTALL_COMMAND}` (builds in ~3 min; needs a C++ "
    "compiler; see docs/detectron2.md)"
)


@register_backend
class Detectron2Backend(Backend):
    name = "detectron2"
    options = {
        "config_file": {
            "type": ["string", "null"],
            "default": None,
            "description": "the model's yacs config.yaml (as detectron2's training writes it)",
        },
        "opts": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "config overrides [KEY, VALUE, ...] as strings",
        },
    }
    file_options = ("config_file",)
    conda_env = "detectron2.yaml"
    packages = ("torch", "torchvision", "detectron2")
    install_hint = INSTALL_HINT

    @classmethod
    def check_options(cls, section):
        if not section["config_file"]:
            raise SegsubmitError(
                "model.detectron2.config_file: the detectron2 backend needs the model's config.yaml"
            )

    @staticmethod
    def host_transform(settings, device):
        from .detectron2_model import detectron2_host_transform

        return detectron2_host_transform(settings, device)

    @staticmethod
    def load(settings, device):
        from .detectron2_model import load_detectron2

        return load_detectron2(settings, device)
