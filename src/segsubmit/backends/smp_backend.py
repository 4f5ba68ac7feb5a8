"""segmentation_models_pytorch (SMP) models: an architecture + encoder built untrained with
`smp.create_model(..., encoder_weights=None)` (nothing is downloaded) and a checkpoint as
competitors save it (see `smp_model`)."""

from ..errors import SegsubmitError
from ..plugins import Backend, register_backend

INSTALL_COMMAND = "pip install -e '.[smp]'"  # segmentation-models-pytorch==0.6.0 (+ timm)
INSTALL_HINT = f"run `{INSTALL_COMMAND}` (or `pip install segmentation-models-pytorch==0.6.0`)"
# create_model arguments the backend sets itself
RESERVED_KWARGS = ("arch", "encoder_name", "encoder_weights", "classes", "in_channels")


@register_backend
class SmpBackend(Backend):
    name = "smp"
    options = {
        "architecture": {
            "type": "string",
            "default": "Unet",
            "description": "an smp.create_model architecture: Unet, UnetPlusPlus, MAnet, Linknet, "
            "FPN, PSPNet, DeepLabV3, DeepLabV3Plus, PAN, UPerNet, Segformer, DPT",
        },
        "encoder": {
            "type": "string",
            "default": "resnet34",
            "description": "the encoder_name the model was trained with (e.g. resnet34, "
            "efficientnet-b4, mit_b2, tu-convnext_tiny)",
        },
        "kwargs": {
            "type": "object",
            "default": {},
            "description": "further smp.create_model arguments as in training (e.g. "
            "encoder_depth, decoder_channels, aux_params)",
        },
    }
    uses_normalisation = True
    conda_env = "smp.yaml"
    packages = ("torch", "torchvision", "segmentation-models-pytorch", "timm")
    install_hint = INSTALL_HINT

    @classmethod
    def check_options(cls, section):
        reserved = sorted(set(section["kwargs"]) & set(RESERVED_KWARGS))
        if reserved:
            raise SegsubmitError(
                f"model.smp.kwargs: {reserved} are set by the backend (architecture, encoder, "
                "the config's classes, no pretrained download, RGB input); remove them"
            )

    @staticmethod
    def load(settings, device):
        from .smp_model import load_smp

        return load_smp(settings, device)
