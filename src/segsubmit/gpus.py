"""One GPU per inference job on a host with several: each job claims a free device with an
exclusive lock file per device id before CUDA initialises, then sees only that device.

Snakemake's `--resources gpu=N` only limits how many GPU jobs run at once; it gives local jobs
no device ids. The claim is what keeps two concurrent jobs off one GPU. Standard library only
(no torch import), so the Snakefile can count GPUs cheaply with `visible_gpu_ids()`.
"""

import contextlib
import errno
import fcntl
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "SEGSUBMIT_GPU_LOCKS"
DEFAULT_LOCK_DIR = "/tmp/segsubmit-gpu-locks"
CLAIMING_DEVICES = ("auto", "cuda")


def visible_gpu_ids(environ=None, driver_dir="/proc/driver/nvidia/gpus"):
    """Ids of the GPUs this process may use, as `CUDA_VISIBLE_DEVICES` names them, found
    without initialising CUDA: its entries when it is set (empty, or from an entry starting
    with -1 on: none, as CUDA reads it), else "0".."N-1" for the N GPUs of the NVIDIA driver's
    list (CUDA numbers them so)."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = []
        for entry in (part.strip() for part in listed.split(",")):
            if not entry or entry.startswith("-"):
                break
            ids.append(entry)
        return ids
    try:
        return [str(index) for index in range(len(os.listdir(driver_dir)))]
    except OSError:
        return []


def lock_dir(environ=None):
    """Where the per-device lock files live: `$SEGSUBMIT_GPU_LOCKS`, else one folder per host
    shared by every checkout and user; inside a SLURM job a subfolder of that job, whose
    `CUDA_VISIBLE_DEVICES` ids are its own (another job's "0" may be another GPU)."""
    environ = os.environ if environ is None else environ
    base = Path(environ.get(LOCK_DIR_VARIABLE) or DEFAULT_LOCK_DIR)
    job = environ.get("SLURM_JOB_ID")
    return base / f"slurm-{job}" if job else base


def make_shared_dir(path):
    """Create `path` (and parents) writable by every user, sticky like /tmp."""
    path = Path(path)
    if path.is_dir():
        return path
    make_shared_dir(path.parent)
    try:
        path.mkdir()
        path.chmod(0o1777)
    except FileExistsError:
        pass
    return path


def lock_file(directory, gpu_id):
    """The lock file of one device id (UUID-style ids made file-name safe)."""
    return Path(directory) / (re.sub(r"[^A-Za-z0-9_.-]", "_", gpu_id) + ".lock")


def open_lock(path):
    """A descriptor of the lock file, created readable and writable by all if missing; read
    only where another user's file can't be written (flock works on either)."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY)
    with contextlib.suppress(PermissionError):  # another user's file that we may still write
        os.fchmod(descriptor, 0o666)
    return descriptor


def holder(path):
    """What the holder of a lock wrote into it (its pid), or '?'."""
    try:
        return Path(path).read_text().strip() or "?"
    except OSError:
        return "?"


@dataclass(frozen=True)
class GpuClaim:
    """A held device: its id and the open lock file, released when the process ends."""

    gpu_id: str
    lock_path: Path
    descriptor: int

    def release(self):
        """Give the device back before the process ends (tests; normally never needed)."""
        os.close(self.descriptor)


def try_claim(gpu_ids, directory):
    """One pass over `gpu_ids` in order: the first whose lock is free, as a `GpuClaim`, or
    None when every one is held."""
    make_shared_dir(directory)
    for gpu_id in gpu_ids:
        path = lock_file(directory, gpu_id)
        descriptor = open_lock(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(descriptor)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # read-only descriptor: the lock holds all the same
        return GpuClaim(gpu_id, path, descriptor)
    return None


def claim_gpu(gpu_ids, directory, poll_seconds=0.5):
    """Claim the first free device of `gpu_ids`; while all are held, say so once and wait."""
    waiting_since = None
    while True:
        claim = try_claim(gpu_ids, directory)
        if claim is not None:
            if waiting_since is not None:
                log.info("GPU %s free after %.1f s", claim.gpu_id, time.monotonic() - waiting_since)
            return claim
        if waiting_since is None:
            waiting_since = time.monotonic()
            held = ", ".join(f"{i} (pid {holder(lock_file(directory, i))})" for i in gpu_ids)
            log.info("all GPUs taken by other jobs: %s; waiting for one to be free", held)
        time.sleep(poll_seconds)


def claim_device(device, environ=None, directory=None, poll_seconds=0.5):
    """For `model.device` auto or cuda on a host with GPUs: claim a free one, make it the only
    one this process sees (`CUDA_VISIBLE_DEVICES` = its id, so call this before CUDA
    initialises and before worker processes start) and log it. Returns the claim, or None
    where nothing is claimed (cpu, an explicit cuda:N, no GPU visible)."""
    environ = os.environ if environ is None else environ
    if device not in CLAIMING_DEVICES:
        return None
    gpu_ids = visible_gpu_ids(environ)
    if not gpu_ids:
        return None
    directory = lock_dir(environ) if directory is None else Path(directory)
    claim = claim_gpu(gpu_ids, directory, poll_seconds)
    environ["CUDA_VISIBLE_DEVICES"] = claim.gpu_id
    log.info(
        "GPU %s claimed (visible: %s; lock %s): CUDA_VISIBLE_DEVICES=%s",
        claim.gpu_id,
        ",".join(gpu_ids),
        claim.lock_path,
        claim.gpu_id,
    )
    return claim
