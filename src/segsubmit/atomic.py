"""Write files under a temporary name and rename them into place, so a crash never leaves a
half-written file under the final name; temporary files of killed writers are removed at the
next write of the same path; a full disk is one line naming the file and the bytes needed."""

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

from .errors import SegsubmitError

NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def temporary_path(final_path, pid=None):
    """`.<name>.<pid>.tmp` beside `final_path`."""
    return final_path.with_name(f".{final_path.name}.{pid or os.getpid()}.tmp")


def pid_alive(pid):
    """Whether a process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def part_path(tmp_path, number):
    """Part `number` of a writer's temporary file (`tmp_path.<number>`): the writer joins and
    deletes its parts; `remove_stale_temporaries` removes those of killed writers with it."""
    return tmp_path.with_name(f"{tmp_path.name}.{number}")


def remove_parts(tmp_path):
    """Delete every `part_path` of `tmp_path`."""
    for path in tmp_path.parent.glob(f"{glob_escape(tmp_path.name)}.*"):
        path.unlink(missing_ok=True)


def remove_stale_temporaries(final_path):
    """Remove temporary files of `final_path`, and their parts, left by writers that no longer
    run (`kill -9`)."""
    prefix = f".{final_path.name}."
    for path in final_path.parent.glob(f".{glob_escape(final_path.name)}.*.tmp*"):
        pid, _, part = path.name[len(prefix) :].partition(".tmp")
        if part and not part[1:].isdigit():
            continue
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            path.unlink(missing_ok=True)


def glob_escape(name):
    """`name` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def no_space_error(final_path, tmp_path, err, needed_bytes):
    """The one-line SegsubmitError for a write that ran out of space or hit a file-size limit."""
    written = tmp_path.stat().st_size if tmp_path.exists() else 0
    needed = needed_bytes() if needed_bytes else None
    free = shutil.disk_usage(final_path.parent).free
    amount = f"needs {needed} bytes" if needed else f"failed after {written} bytes"
    return SegsubmitError(
        f"{final_path}: cannot write ({err.strerror}): {amount}, {free} bytes free on its file "
        "system; free space (or raise the file-size limit) and run again"
    )


@contextlib.contextmanager
def atomic_path(final_path, needed_bytes=None):
    """Yield a temporary path beside `final_path`; rename it over `final_path` on success.

    `needed_bytes`: a callable giving the file's full size, for the message when the disk is
    full (ENOSPC, EDQUOT) or the file is too large (EFBIG).
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final_path)
    tmp_path = temporary_path(final_path)
    try:
        yield tmp_path
        os.replace(tmp_path, final_path)
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        raise no_space_error(final_path, tmp_path, err, needed_bytes) from err
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path, payload):
    """Write `payload` as indented JSON, atomically."""
    text = json.dumps(payload, indent=1, ensure_ascii=False) + "\n"
    with atomic_path(path, lambda: len(text.encode("utf-8"))) as tmp_path:
        tmp_path.write_text(text, encoding="utf-8")
