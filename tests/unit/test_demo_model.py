"""The demo model's training: the same weights whatever thread count the process has."""

import torch

from segsubmit.demo_model import TRAINING_THREADS, train_demo_model
from segsubmit.testing import CLASSES, make_dataset


def trained_weights(tmp_path, data, threads):
    torch.set_num_threads(threads)
    path = tmp_path / f"model-{threads}.pt"
    train_demo_model(
        data / "train.json", data, CLASSES, path, "lraspp_mobilenet_v3_large", steps=3, crop=32,
        seed=0, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], batch_size=2,
    )  # fmt: skip
    assert torch.get_num_threads() == threads  # restored after training
    return torch.load(path, weights_only=True)


def test_training_is_independent_of_the_process_thread_count(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, {"train": 3, "val": 1, "test": 1}, size=48)
    one, two = trained_weights(tmp_path, data, 1), trained_weights(tmp_path, data, 3)
    assert TRAINING_THREADS == 2 and one.keys() == two.keys()
    assert all(torch.equal(one[key], two[key]) for key in one)
