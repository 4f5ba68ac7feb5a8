"""Models whose output is not (N, C, H, W) logits, through the real TorchScript backend and the
infer stage's probe on every image size of the shard: taken where the element is documented,
else refused in one line naming what came back (never a traceback, never a misleading count)."""

import re

import pytest
import torch

from segsubmit.backends.base import load_predictor, probe_predictor
from segsubmit.errors import SegsubmitError
from segsubmit.testing import model_settings


def logits(x):
    return torch.nn.functional.conv2d(x, torch.ones(11, 3, 1, 1))


class Logits(torch.nn.Module):
    def forward(self, x):
        return logits(x)


class Tuple(Logits):
    def forward(self, x):
        scores = logits(x)
        return scores, scores[:, :2]  # main head first, auxiliary after


class OtherKeys(Logits):
    def forward(self, x):
        return {"seg": logits(x), "aux": x}


class LabelMaps(Logits):
    def forward(self, x):
        return logits(x).argmax(1, keepdim=True)


class ChannelsLast(Logits):
    def forward(self, x):
        return logits(x).permute(0, 2, 3, 1)


class OnlySquares(Logits):
    def forward(self, x):
        if x.shape[-1] != x.shape[-2]:
            raise RuntimeError("expected a square input")
        return logits(x)


def scripted(tmp_path, module):
    path = tmp_path / f"{type(module).__name__}.ts"
    torch.jit.script(module).save(str(path))
    return load_predictor(model_settings("torchscript", str(path), 11, device="cpu"))


def test_a_tuple_gives_its_first_element(tmp_path):
    predictor = scripted(tmp_path, Tuple())
    probe_predictor(predictor, [(20, 30), (16, 16)])


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (OtherKeys(), "returns a dict with keys ['aux', 'seg'], none of ['out', 'logits']"),
        (LabelMaps(), "returns torch.int64 values of shape (1, 1, 64, 64): label maps"),
        (ChannelsLast(), "returns shape (1, 64, 64, 11): channels last (N, H, W, C)"),
    ],
)
def test_other_outputs_are_refused_at_load_in_one_line(tmp_path, module, message):
    with pytest.raises(SegsubmitError, match=re.escape(message)) as e:
        scripted(tmp_path, module)
    assert "\n" not in str(e.value)


def test_a_model_failing_on_one_of_the_shards_sizes_is_refused_before_inference(tmp_path):
    predictor = scripted(tmp_path, OnlySquares())
    with pytest.raises(SegsubmitError, match="the model fails on 30x20 images") as error:
        probe_predictor(predictor, [(16, 16), (20, 30)])
    assert "\n" not in str(error.value) and "expected a square input" in str(error.value)
