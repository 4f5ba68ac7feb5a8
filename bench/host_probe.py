"""What kind of host is this? The CPU, memory and disk facts that bound the workflow's CPU-side
stages, printed as one table, so timings from different machines can be compared.

    python bench/host_probe.py [--dir results]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from timing import seconds, timed  # bench/ is on sys.path as scripts run

MiB = 1 << 20


def cpu_facts():
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "?",
    )  # fmt: skip
    quota = Path("/sys/fs/cgroup/cpu.max")
    return {
        "cpu model": model,
        "cpus usable": len(os.sched_getaffinity(0)),
        "cgroup cpu.max": quota.read_text().strip() if quota.exists() else "n/a",
    }


def memory_rates(size=512 * MiB):
    """GB/s of first-touch allocation (fresh pages) and of a copy between touched buffers."""
    first_touch = seconds(lambda: np.ones(size, np.uint8))
    source, target = np.ones(size, np.uint8), np.empty(size, np.uint8)
    target.fill(0)
    copy = seconds(lambda: np.copyto(target, source))
    return {"first-touch GB/s": size / first_touch / 1e9, "memcpy GB/s": size / copy / 1e9}


def disk_rates(folder, size=147 * MiB):
    """MB/s of writing a CSV-sized file with and without fsync, and of reading it back."""
    folder.mkdir(parents=True, exist_ok=True)
    path, payload = folder / "probe.bin", np.ones(size, np.uint8).tobytes()

    def write(sync):
        with open(path, "wb") as handle:
            handle.write(payload)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())

    rates = {
        "write MB/s (no fsync)": size / seconds(lambda: write(False)) / 1e6,
        "write+fsync MB/s": size / seconds(lambda: write(True)) / 1e6,
        "read MB/s (cached)": size / seconds(path.read_bytes) / 1e6,
    }
    path.unlink()
    return rates


def python_rate():
    """Million simple Python loop iterations per second."""
    return {"python Mloops/s": 5 / seconds(lambda: sum(i * i for i in range(5_000_000)))}


def import_seconds(modules):
    """Seconds of `python -c 'import m'` in a fresh process, per module (second run: warm)."""
    rows = {}
    for module in modules:
        command = [sys.executable, "-c", f"import {module}"]
        subprocess.run(command, capture_output=True)  # first: file cache
        elapsed, result = timed(lambda c=command: subprocess.run(c, capture_output=True))
        rows[f"import {module} s"] = elapsed if result.returncode == 0 else float("nan")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("results/probe"))
    parser.add_argument(
        "--imports", nargs="*", default=["numpy", "cv2", "torch", "snakemake.script", "kornia"]
    )
    arguments = parser.parse_args()
    facts = {**cpu_facts(), **python_rate(), **memory_rates(), **disk_rates(arguments.dir)}
    facts.update(import_seconds(arguments.imports))
    print("| host fact | value |\n| --- | --- |")
    for name, value in facts.items():
        print(f"| {name} | {value:.3g} |" if isinstance(value, float) else f"| {name} | {value} |")


if __name__ == "__main__":
    main()
