"""Resize ahead: a shard's resize job's work (its resized maps and its submission fragment) done
inside its infer job, beside inference, then adopted by the resize job.

The infer job forks one process before CUDA starts; each label map it writes is also queued
to that process, which resizes it and encodes its row as the resize job would
(`resize.resize_label_maps`; the format's `write_fragment`, in worker processes of its own)
into files staged beside the resize job's outputs (`<output>.ahead`). Once the infer job's
label file is in place it writes the key (`<resized>.ahead.json`): a digest of the resize
job's params (settings, formats, classes, code digest), the resize libraries' versions and the
label file's size and random token (its zip comment: Snakemake touches outputs after a job, so
their times cannot tie them). The resize job adopts the staged files
(renamed into place, then touched) only when the key it computes from its own params and input
is that one, else deletes them and does the work itself. So the outputs are the ones the
resize job computes, and a change of resize setting, code or library reruns the resize job as
before; the infer job gets the plan as a param derived from its outputs, which Snakemake's
params trigger leaves out, so such a change never reruns inference.

Speculative work holds up the GPU only briefly: when the process falls `QUEUE_MAPS` maps
behind, inference waits for it while its waits stay under `WAIT_SHARE` of its time since the
first map (a resize job would cost more: about half of inference at 512² on an H200), else the
process is abandoned and its files deleted, as when it fails; the resize job then does the work.
"""

import contextlib
import importlib.metadata
import itertools
import json
import logging
import multiprocessing
import os
import queue
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .labels import batched, label_shard_writer
from .plugins import format_named, format_settings
from .resize import resize_label_maps

log = logging.getLogger(__name__)

QUEUE_MAPS = 1024  # maps the process may fall behind before inference waits (~270 MB at 512²)
WAIT_SHARE = 0.2  # of inference's time since its first map, the most it waits for the process
PROCESSES = 6  # its row workers (H200, ~780 maps/s: the rows need about 3 CPUs)
MAPS_PER_RESIZE = 64  # maps resized per call
POLL_S = 2.0  # how often the process checks that the infer job still runs
RESIZE_LIBRARIES = {
    "albumentations": ("albumentations", "opencv-python-headless", "opencv-python", "numpy"),
    "kornia": ("kornia", "torch", "numpy"),
}


class Abandoned(Exception):
    """The infer job gave up on the resize-ahead process, or ended without it."""


@dataclass(frozen=True)
class AheadPlan:
    """What the resize job of one shard writes: its `resized` path, its `fragments` ({format
    name: path}), its `params` (the rule's params, as its job gets them); `mode`: the value of
    `resize.ahead` (auto: only on a GPU)."""

    resized: str
    fragments: dict
    params: dict = field(default_factory=dict)
    mode: object = "auto"

    @classmethod
    def from_params(cls, params):
        """The plan of the infer rule's `resize_ahead` param; None when it is off ({})."""
        return cls(**params) if params else None

    def wanted_on(self, device):
        """Whether to resize ahead with the model on `device`."""
        return self.mode is True or (self.mode == "auto" and device.type == "cuda")

    @property
    def outputs(self):
        """[(final path, staged path)] of the resized file and each fragment."""
        return [(path, staged_path(path)) for path in [self.resized, *self.fragments.values()]]

    @property
    def key_path(self):
        return f"{self.resized}.ahead.json"


def staged_path(path):
    """Where the infer job stages the resize job's output `path`."""
    return f"{path}.ahead"


def library_versions(backend):
    """{distribution: version} of the installed libraries that `resize.backend` uses."""
    versions = {}
    for name in RESIZE_LIBRARIES[backend]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def labels_token(labels_path):
    """The token the infer job wrote into the label file (its zip comment; "" for none)."""
    with zipfile.ZipFile(labels_path) as archive:
        return archive.comment.decode("ascii", "replace")


def resize_key(params, labels_path):
    """What ties staged outputs to the resize job: its `params`, this environment's resize
    libraries and the label file at `labels_path` (this very file: the random token its
    infer job wrote into it, its size); a JSON-ready dict."""
    return json.loads(json.dumps({
        "params": params,
        "libraries": library_versions(params["backend"]),
        "labels": [labels_token(labels_path), os.path.getsize(labels_path)],
    }))  # fmt: skip  # tuples as lists, as read back


def remove_staged(plan):
    """Delete the staged outputs and the key of `plan`."""
    for _, staged in plan.outputs:
        Path(staged).unlink(missing_ok=True)
    Path(plan.key_path).unlink(missing_ok=True)


def staged_key(plan):
    """The key the infer job wrote for `plan`'s staged files; None when there is none."""
    try:
        with open(plan.key_path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def refusal(plan, labels_path):
    """Why `plan`'s staged files are not this resize job's outputs (None: they are)."""
    key = staged_key(plan)
    if key is None:
        return "none staged" if not os.path.exists(plan.key_path) else "unreadable key"
    if not all(os.path.exists(staged) for _, staged in plan.outputs):
        return "staged files missing"
    expected = resize_key(plan.params, labels_path)
    changed = [part for part in expected if key.get(part) != expected[part]]
    return f"{', '.join(changed)} changed since they were staged" if changed else None


def adopt_staged(plan, labels_path):
    """The resize job's side: move the staged outputs into place when their key is the one
    of `plan` and `labels_path`; True when adopted. Staged files that do not match are
    deleted (and why is logged)."""
    reason = refusal(plan, labels_path)
    if reason is None:
        for final, staged in plan.outputs:
            os.replace(staged, final)
            os.utime(final)  # newer than the label file, as Snakemake's mtime trigger expects
    elif reason != "none staged":
        log.info("resize: staged files of the infer job not used (%s)", reason)
    remove_staged(plan)
    return reason is None


class QueuedItems:
    """(image id, map) items from the infer job's queue up to its ("end", warnings) marker,
    whose warnings it keeps; raises `Abandoned` once the job sets `abandon` or exits."""

    def __init__(self, items, abandon, parent):
        self.items, self.abandon, self.parent, self.warnings = items, abandon, parent, None

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self.abandon.is_set() or os.getppid() != self.parent:
                raise Abandoned
            try:
                item = self.items.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item[0] == "end":
                self.warnings = item[1]
                raise StopIteration
            return item


def resized_items(items, params, add):
    """Each (image id, map) of `items` resized to `params["size"]` (`MAPS_PER_RESIZE` at a
    time) and passed to `add` as it is yielded."""
    size = tuple(params["size"])
    for span in batched(items, MAPS_PER_RESIZE):
        maps = [label_map for _, label_map in span]
        resized = resize_label_maps(maps, size, params["backend"], params["interpolation"])
        for (image_id, _), label_map in zip(span, resized, strict=True):
            add(image_id, label_map)
            yield image_id, label_map


def write_staged(plan, items, count):
    """Resize the `count` maps of `items` (a `QueuedItems`) into the staged resized file and
    encode their rows into the staged fragment (at most one fragment format), one pass."""
    params, size = plan.params, tuple(plan.params["size"])
    warnings = []  # the label file's, stored with the resized maps as the resize job does
    with label_shard_writer(Path(staged_path(plan.resized)), count * size[0] * size[1],
                            warnings) as add:  # fmt: skip
        stream = resized_items(items, params, add)
        for name, path in plan.fragments.items():
            settings = format_settings(name, {}, params["class_names"], size, PROCESSES)
            ids, maps = itertools.tee(stream)  # read in step: one item buffered
            write = format_named(name).write_fragment
            write(Path(staged_path(path)), (i for i, _ in ids), (m for _, m in maps), settings)
        for _ in stream:  # without a fragment format, the resized maps alone
            pass
        warnings.extend(items.warnings)


def warm_up(params):
    """Import and run the resize library once, while the infer job still loads its model:
    a cold import (Albumentations: about a second) would otherwise put the process that many
    maps behind the first batches."""
    started = time.perf_counter()
    size = tuple(params["size"])
    resize_label_maps([np.zeros(size, np.uint8)], size, params["backend"], params["interpolation"])
    log.info("infer: resize ahead ready after %.2f s", time.perf_counter() - started)


def ahead_process(plan, items, abandon, count, results, parent):
    """The resize-ahead process: `write_staged`, then ("done", None) or ("failed", reason)
    sent on `results`."""
    try:
        warm_up(plan.params)
        write_staged(plan, QueuedItems(items, abandon, parent), count)
        results.send(("done", None))
    except Abandoned:
        results.send(("abandoned", None))
    except Exception as err:  # reported by the infer job, which then leaves the work
        results.send(("failed", f"{type(err).__name__}: {err}"))


class ResizeAhead:
    """The infer job's side of the resize-ahead process of one shard (`count` maps): started
    at once (fork, before CUDA), fed by `add`, ended by `finish` or `abandon`."""

    def __init__(self, plan, count):
        fork = multiprocessing.get_context("fork")
        self.plan, self.reason, self.queued = plan, None, 0
        self.first_map_at, self.waited = None, 0.0  # perf_counter; seconds inference waited
        self.token = secrets.token_hex(16)  # written into the label file (`labels_token`)
        remove_staged(plan)
        self.items, self.abandon_event = fork.Queue(QUEUE_MAPS), fork.Event()
        self.results, sender = fork.Pipe(duplex=False)
        self.process = fork.Process(
            target=ahead_process,
            args=(plan, self.items, self.abandon_event, count, sender, os.getpid()),
            name="resize-ahead",
        )
        self.process.start()
        sender.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and self.reason is None and self.process.is_alive():
            self.abandon(f"the infer job failed: {kind.__name__}")

    def add(self, image_id, label_map):
        """Queue one label map; when the process is `QUEUE_MAPS` maps behind, wait for it
        within `WAIT_SHARE` (`allowed_wait`), else abandon it."""
        if self.reason is not None:
            return
        now = time.perf_counter()
        self.first_map_at = self.first_map_at or now
        try:
            self.items.put_nowait((image_id, label_map))
        except queue.Full:
            try:
                self.items.put((image_id, label_map), timeout=self.allowed_wait(now))
            except queue.Full:
                self.waited += time.perf_counter() - now
                self.abandon(f"{QUEUE_MAPS} maps behind inference after {self.queued} maps, "
                             f"inference had waited {self.waited:.1f} s for it")  # fmt: skip
                return
            self.waited += time.perf_counter() - now
        self.queued += 1

    def allowed_wait(self, now):
        """Seconds inference may still wait for room in the queue at `now`: 0 once the
        process has died."""
        if not self.process.is_alive():
            return 0.0
        return max(WAIT_SHARE * (now - self.first_map_at) - self.waited, 0.0)

    def abandon(self, reason):
        """Stop the process and delete its files; the resize job does the work."""
        self.reason = self.reason or reason
        self.abandon_event.set()
        self.items.cancel_join_thread()  # what is still queued is dropped at exit
        self.process.join()
        remove_staged(self.plan)
        log.warning("infer: resize ahead abandoned (%s); the resize job does its work", reason)

    def finish(self, warnings, labels_path):
        """After the label file is in place: wait for the process, then write the key that
        lets the resize job adopt its files. Returns the seconds waited."""
        if self.reason is not None:
            return 0.0
        started = time.perf_counter()
        self.items.put(("end", list(warnings)))
        try:
            status, detail = self.results.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            status, detail = "failed", f"exit code {self.process.exitcode}"
        self.process.join()
        if status != "done":
            self.abandon(detail or status)
            return 0.0
        key = resize_key(self.plan.params, labels_path)
        with atomic_path(Path(self.plan.key_path)) as tmp_path:
            tmp_path.write_text(json.dumps(key))
        waited = time.perf_counter() - started
        log.info("infer: resize ahead finished %.2f s after the last map was written "
                 "(inference waited %.2f s for it before)", waited, self.waited)  # fmt: skip
        return waited
