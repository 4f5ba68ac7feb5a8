"""Hugging Face transformers models: a local `save_pretrained` folder holding the model and its
image processor, predicting what the processor's own pipeline would (see `transformers_model`):
`processor(images)` -> model -> `processor.post_process_semantic_segmentation(outputs,
target_sizes=[(h, w)])`."""

from ..plugins import Backend, register_backend

INSTALL_COMMAND = "pip install -e '.[transformers]'"
INSTALL_HINT = f"run `{INSTALL_COMMAND}` (or `pip install 'transformers>=5,<6'`)"


@register_backend
class TransformersBackend(Backend):
    name = "transformers"
    weights_kind = "folder"  # config.json + model.safetensors + preprocessor_config.json
    conda_env = "transformers.yaml"
    packages = ("torch", "torchvision", "transformers", "safetensors", "timm")
    install_hint = INSTALL_HINT

    @staticmethod
    def load(settings, device):
        from .transformers_model import load_transformers

        return load_transformers(settings, device)
