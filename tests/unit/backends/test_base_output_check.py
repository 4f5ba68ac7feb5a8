"""Property: the common output check (`backends.base.model_logits` + `check_logits`) either
returns (N, C, H, W) float logits for the configured classes or raises one SegsubmitError line,
whatever a model returns: tensors of any rank, layout and dtype, tuples, lists, dicts with any
keys, objects with `.logits`, other objects."""

import types

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segsubmit.backends.base import Predictor, check_logits, model_logits
from segsubmit.errors import SegsubmitError

BATCH, CLASSES = 2, 5
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.uint8, torch.int8,
          torch.int32, torch.int64, torch.bool, torch.complex64]  # fmt: skip
side = st.sampled_from([0, 1, 2, BATCH, 3, CLASSES, 7])


@st.composite
def tensors(draw):
    shape = draw(st.lists(side, min_size=0, max_size=5))
    if draw(st.booleans()) and len(shape) == 4:  # a likely layout: NCHW or NHWC
        shape = draw(st.sampled_from([[BATCH, CLASSES, 3, 4], [BATCH, 3, 4, CLASSES]]))
    return torch.zeros(shape, dtype=draw(st.sampled_from(DTYPES)))


leaves = st.one_of(
    tensors(),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.builds(types.SimpleNamespace, logits=tensors()),
    st.builds(types.SimpleNamespace, logits=st.integers()),
    st.builds(types.SimpleNamespace),
)
outputs = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["out", "logits", "aux", "masks"]),
                st.text(max_size=4),
                st.integers(),
            ),  # fmt: skip
            inner,
            max_size=3,
        ),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(outputs)
def test_output_check_returns_logits_or_one_line(output):
    try:
        scores = model_logits(output, Predictor.output_keys, "model.weights")
        check_logits(scores, BATCH, CLASSES, "model.weights")
    except SegsubmitError as err:
        message = str(err)
        assert message and "\n" not in message and len(message) < 400, message
        return
    assert isinstance(scores, torch.Tensor) and scores.is_floating_point()
    assert scores.ndim == 4 and scores.shape[:2] == (BATCH, CLASSES)
