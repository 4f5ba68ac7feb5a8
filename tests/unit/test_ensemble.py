"""Combining members (segsubmit.ensemble) against references: float64 soft mean, scipy's mode."""

import numpy as np
import pytest
import torch

from segsubmit.ensemble import hard_vote, soft_vote

NUM_CLASSES = 11


def member_outputs(count, seed=0, shape=(4, NUM_CLASSES, 32, 32)):
    """Each member's (fp16 probabilities, full-precision argmax labels) from random logits."""
    generator = torch.Generator().manual_seed(seed)
    outputs = []
    for _ in range(count):
        logits = torch.randn(shape, generator=generator) * 3
        outputs.append((logits.softmax(1).half(), logits.argmax(1).to(torch.uint8)))
    return outputs


def test_one_member_reproduces_its_own_maps_exactly():
    ((probs, labels),) = member_outputs(1)
    for weight in (1.0, 0.3):
        assert torch.equal(soft_vote([probs], [weight], labels), labels)


def test_soft_vote_equals_a_float64_reference():
    outputs = member_outputs(3, seed=1)
    weights = [1.0, 1.5, 0.5]
    combined = soft_vote([p for p, _ in outputs], weights, outputs[0][1])
    reference = sum(w * p.double() for w, (p, _) in zip(weights, outputs, strict=True)).argmax(1)
    agree = (combined.long() == reference).double().mean().item()
    assert agree >= 0.9999  # disagreements: float32 vs float64 sums within rounding of a tie


def test_odd_member_vote_equals_the_elementwise_mode():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 2, size=(5, 3, 16, 16), dtype=np.uint8)  # two classes: no ties
    expected = stats.mode(maps, axis=0, keepdims=False).mode
    assert np.array_equal(hard_vote(maps, 2), expected)
    many = rng.integers(0, NUM_CLASSES, size=(5, 3, 16, 16), dtype=np.uint8)
    votes = np.stack([(many == c).sum(0) for c in range(NUM_CLASSES)])
    unique_winner = (votes == votes.max(0)).sum(0) == 1
    mode = stats.mode(many, axis=0, keepdims=False).mode
    assert np.array_equal(hard_vote(many, NUM_CLASSES)[unique_winner], mode[unique_winner])


def test_vote_ties_go_to_the_earliest_voter():
    maps = np.array([[[[3, 1]]], [[[4, 2]]], [[[5, 2]]]], dtype=np.uint8)  # (3 voters, 1, 1, 2)
    assert hard_vote(maps, 6).tolist() == [[[3, 2]]]
