"""Run one workflow stage: log to the rule's log file and stderr; user errors become one line."""

import logging
import sys
import time

from .errors import SegsubmitError


def configure_logging(log_path=None):
    """INFO to stderr and (when given) to the rule's log file."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def run_stage(log_path, stage, **arguments):
    """Call `stage(**arguments)`; a SegsubmitError exits 1 with its one-line message."""
    configure_logging(log_path)
    log = logging.getLogger(f"segsubmit.{stage.__name__}")
    started = time.perf_counter()
    try:
        result = stage(**arguments)
    except SegsubmitError as err:
        log.error("error: %s", err)
        sys.exit(1)
    log.info("done in %.2f s", time.perf_counter() - started)
    return result
