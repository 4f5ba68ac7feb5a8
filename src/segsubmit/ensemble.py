"""How an ensemble's members are combined (docs/ensembles.md), as pure functions on stacked
maps: the combine stage of the ensemble rules (to be wired: see docs/ensembles.md) calls them
per span of images.

Tie rules, stated once:
- soft: where several classes reach the maximum of the weighted mean, the class the first
  member predicts wins if it is among them (its full-precision argmax always is among the fp16
  maxima of its own probabilities, rounding being monotone: one member reproduces its own maps
  exactly), else the lowest class index.
- vote: where several classes get the most votes, the class of the earliest voter (members in
  config order, then CSVs) among them wins.
"""

import numpy as np
import torch


def soft_vote(probabilities, weights, first_labels):
    """uint8 labels (N, h, w) from members' probabilities (M of (N, C, h, w), any float dtype,
    on one device) and weights; the sum is float32 on that device. `first_labels`: the first
    member's own labels (N, h, w), for the tie rule."""
    pairs = zip(weights, probabilities, strict=True)
    total = sum(weight * probs.float() for weight, probs in pairs)
    tied = total == total.amax(dim=1, keepdim=True)
    first_tied = tied.gather(1, first_labels[:, None].long())[:, 0]
    return torch.where(first_tied, first_labels.long(), total.argmax(dim=1)).to(torch.uint8)


def hard_vote(label_maps, num_classes):
    """Pixel-wise majority of voters' uint8 maps (M, N, h, w) -> (N, h, w); ties go to the
    earliest voter's class among the most voted."""
    maps = np.asarray(label_maps)
    votes = np.stack([(maps == label).sum(axis=0) for label in range(num_classes)])
    most_voted = votes == votes.max(axis=0, keepdims=True)
    voter_wins = np.take_along_axis(most_voted, maps.astype(np.intp), axis=0)
    earliest = voter_wins.argmax(axis=0)
    return np.take_along_axis(maps, earliest[None], axis=0)[0]
