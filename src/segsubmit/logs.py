"""Run one workflow stage: log to the rule's log file and stderr; user errors become one line."""

import logging
import os
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


def seconds_since_process_start():
    """Wall seconds since this process started (from /proc on Linux; None elsewhere): what
    start-up and imports cost before the stage ran."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rpartition(")")[2].split()[19])
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_stage(log_path, stage, **arguments):
    """Call `stage(**arguments)`; a SegsubmitError exits 1 with its one-line message."""
    configure_logging(log_path)
    log = logging.getLogger(f"segsubmit.{stage.__name__}")
    startup = seconds_since_process_start()
    if startup is not None:
        log.info("process start-up and imports: %.2f s", startup)
    started = time.perf_counter()
    try:
        result = stage(**arguments)
    except SegsubmitError as err:
        log.error("error: %s", err)
        sys.exit(1)
    log.info("done in %.2f s", time.perf_counter() - started)
    return result
