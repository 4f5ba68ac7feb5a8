"""GPU claims with real processes and real file locks (no GPU needed: the ids are what
`CUDA_VISIBLE_DEVICES` lists; the claim never touches CUDA)."""

import os
import selectors
import signal
import subprocess
import sys

import pytest
from conftest import SNAKEMAKE_ENV

from segsubmit.gpus import claim_device, lock_dir, visible_gpu_ids

HOLDER = """
import logging, os, sys
from segsubmit.gpus import claim_device
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
claim_device(sys.argv[1], directory=sys.argv[2], poll_seconds=0.05)
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
sys.stdin.read()  # hold the GPU until the test closes stdin
"""


def start_holder(lock_folder, visible, device="auto"):
    """A process that claims a GPU among `visible` and holds it until its stdin closes."""
    environ = {**SNAKEMAKE_ENV, "CUDA_VISIBLE_DEVICES": visible}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, device, str(lock_folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def read_line(stream, timeout):
    """The next line of a pipe, or None if none comes within `timeout` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        return stream.readline().strip() if selector.select(timeout) else None


def claimed(process, timeout=30):
    line = read_line(process.stdout, timeout)
    assert line, process.stderr.read() if process.poll() is not None else "no claim in time"
    return line


def stop(*processes):
    for process in processes:
        if process.poll() is None:
            process.stdin.close()
            process.wait(timeout=30)


def test_visible_gpu_ids_from_cuda_visible_devices():
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3", "5"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": " GPU-a1b2, 1 "}) == ["GPU-a1b2", "1"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]  # as CUDA reads it


def test_visible_gpu_ids_from_the_driver_list(tmp_path):
    (tmp_path / "0000:19:00.0").mkdir()
    (tmp_path / "0000:3b:00.0").mkdir()
    assert visible_gpu_ids({}, tmp_path) == ["0", "1"]  # CUDA numbers them 0..N-1
    assert visible_gpu_ids({}, tmp_path / "missing") == []


def test_lock_dir_is_per_host_or_per_slurm_job(tmp_path):
    assert str(lock_dir({})) == "/tmp/segsubmit-gpu-locks"
    assert lock_dir({"SEGSUBMIT_GPU_LOCKS": str(tmp_path)}) == tmp_path
    assert lock_dir({"SEGSUBMIT_GPU_LOCKS": str(tmp_path), "SLURM_JOB_ID": "42"}) == (
        tmp_path / "slurm-42"
    )


@pytest.mark.parametrize("device", ["cpu", "cuda:1"])
def test_cpu_and_explicit_devices_claim_nothing(device, tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert claim_device(device, environ, tmp_path) is None
    assert environ == {"CUDA_VISIBLE_DEVICES": "0,1"} and not list(tmp_path.iterdir())


def test_no_visible_gpu_claims_nothing(tmp_path):
    assert claim_device("auto", {"CUDA_VISIBLE_DEVICES": ""}, tmp_path) is None


def test_claim_sets_cuda_visible_devices_to_the_claimed_id(tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "3,5"}
    claim = claim_device("cuda", environ, tmp_path)
    try:
        assert claim.gpu_id == "3" and environ["CUDA_VISIBLE_DEVICES"] == "3"
        assert claim.lock_path == tmp_path / "3.lock"
        assert claim.lock_path.read_text().strip() == str(os.getpid())
    finally:
        claim.release()


def test_concurrent_processes_get_distinct_gpus_and_a_third_waits(tmp_path):
    first, second = start_holder(tmp_path, "0,1"), start_holder(tmp_path, "0,1")
    third = None
    try:
        first_id, second_id = claimed(first), claimed(second)
        assert {first_id, second_id} == {"0", "1"}
        third = start_holder(tmp_path, "0,1")
        assert "waiting for one to be free" in read_line(third.stderr, 30)
        assert read_line(third.stdout, 1.0) is None  # still waiting
        stop(first)
        assert claimed(third) == first_id
    finally:
        stop(first, second, *([third] if third else []))


def test_claims_respect_cuda_visible_devices(tmp_path):
    holders = [start_holder(tmp_path, "3,5") for _ in range(2)]
    try:
        assert sorted(claimed(holder) for holder in holders) == ["3", "5"]
        assert sorted(path.name for path in tmp_path.iterdir()) == ["3.lock", "5.lock"]
    finally:
        stop(*holders)


def test_a_killed_holder_frees_its_gpu(tmp_path):
    holder = start_holder(tmp_path, "7")
    assert claimed(holder) == "7"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    successor = start_holder(tmp_path, "7")
    try:
        assert claimed(successor, timeout=30) == "7"
    finally:
        stop(successor)


def test_counting_gpus_imports_no_torch():
    code = (
        "import sys; from segsubmit.config import visible_gpu_count; visible_gpu_count(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
