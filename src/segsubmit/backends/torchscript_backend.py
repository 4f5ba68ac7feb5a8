"""TorchScript modules (`torch.jit.save`d) taking images normalised by `model.mean/std`,
returning logits, `{"out": logits}` or a tuple whose first element is the logits."""

from ..plugins import Backend, register_backend


@register_backend
class TorchscriptBackend(Backend):
    name = "torchscript"
    uses_normalisation = True

    @staticmethod
    def load(settings, device):
        from .torchscript_model import load_torchscript

        return load_torchscript(settings, device)
