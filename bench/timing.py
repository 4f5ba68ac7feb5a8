"""The one timing helper of bench/ (median wall seconds, CUDA work included), fresh-process
timing, and the table every row lands in."""

import statistics
import subprocess
import sys
import time


def synchronize():
    """Wait for queued CUDA work, when torch is imported and CUDA is there."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function):
    """(wall seconds, result) of `function()`, GPU work included."""
    synchronize()
    started = time.perf_counter()
    result = function()
    synchronize()
    return time.perf_counter() - started, result


def seconds(function, repeats=3):
    """Median wall seconds of `repeats` calls of `function()`, GPU work included."""
    return statistics.median(timed(function)[0] for _ in range(repeats))


def timed_process(command, env=None):
    """(wall seconds, stdout + stderr) of `command` as a fresh process; raises if it fails."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return elapsed, result.stdout + result.stderr


class Table:
    """Rows of (what, value, ratio to a baseline row, note), printed as they come."""

    def __init__(self):
        self.rows, self.figures = [], {}

    def row(self, name, value, baseline=None, note="", unit="s"):
        """Record `value` under `name`; the ratio column divides by row `baseline`."""
        self.figures[name] = value
        ratio = f"{value / self.figures[baseline]:.2f}" if baseline in self.figures else ""
        shown = f"{value:.3f} s" if unit == "s" else f"{value:.4g} {unit}".rstrip()
        self.rows.append(f"| {name} | {shown} | {ratio} | {note} |")
        print(self.rows[-1], flush=True)

    def skip(self, family, reason):
        """Say that a family of rows did not run, and why."""
        self.rows.append(f"| {family}: skipped | | | {reason} |")
        print(self.rows[-1], flush=True)

    def text(self):
        head = "| what | value | ratio to its baseline | note |\n| --- | --- | --- | --- |\n"
        return head + "\n".join(self.rows)
