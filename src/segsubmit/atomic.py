"""Write files under a temporary name and rename them into place, so a crash never leaves a
half-written file under the final name."""

import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final_path):
    """Yield a temporary path beside `final_path`; rename it over `final_path` on success."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = final_path.with_name(f".{final_path.name}.{os.getpid()}.tmp")
    try:
        yield tmp_path
        os.replace(tmp_path, final_path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path, payload):
    """Write `payload` as indented JSON, atomically."""
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
