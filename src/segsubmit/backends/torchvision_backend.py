"""torchvision segmentation architectures (`torchvision.models.get_model` names) + a state dict
(`torch.save(model.state_dict(), path)`; `{"model": state_dict}` works too)."""

from ..plugins import Backend, register_backend


@register_backend
class TorchvisionBackend(Backend):
    name = "torchvision"
    options = {
        "architecture": {
            "type": "string",
            "default": "lraspp_mobilenet_v3_large",
            "description": "a torchvision.models.segmentation name (the demo model's too)",
        }
    }
    uses_normalisation = True
    trains_demo_model = True
    packages = ("torch", "torchvision")

    @staticmethod
    def load(settings, device):
        from .torchvision_model import load_torchvision

        return load_torchvision(settings, device)
