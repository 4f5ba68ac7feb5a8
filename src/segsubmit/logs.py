"""Run one workflow stage: log to the rule's log file and stderr; user errors become one line,
unexpected ones their full traceback in the rule's log too."""

import atexit
import inspect
import logging
import os
import resource
import sys
import threading
import time

from .errors import SegsubmitError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_path=None):
    """INFO to stderr and (when given) to the rule's log file."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)


def seconds_since_process_start():
    """Wall seconds since this process started (from /proc on Linux; None elsewhere): what
    start-up and imports cost before the stage ran."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rpartition(")")[2].split()[19])
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def peak_memory_mib():
    """(this process's peak RSS, its largest finished child's peak RSS) in MiB, from
    getrusage: what a job held at most, measured by the kernel rather than sampled."""
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: KiB, bytes on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / scale, children / scale


def use_threads(threads):
    """Let the libraries this process imported use `threads` CPU threads (the rule's
    `threads:`): torch's intra-op pool and OpenCV's. Snakemake sets OMP_NUM_THREADS too."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def rule_params(params, omit=("code",)):
    """A rule's `params:` as the stage's keyword arguments (they share their names), without
    those that exist only to rerun or key the job (`code`)."""
    return {name: value for name, value in params.items() if name not in omit}


def run_stage(log_path, stage, threads=None, **arguments):
    """Call `stage(**arguments)` with `threads` CPU threads (None: leave the libraries' own
    setting; a stage with a `threads` parameter also gets it). A SegsubmitError exits 1 with its
    one-line message; any other exception exits 1 after writing its traceback to the rule's log
    (and stderr), so a cluster job's log shows the cause."""
    configure_logging(log_path)
    log = logging.getLogger(f"segsubmit.{stage.__name__}")
    startup = seconds_since_process_start()
    if startup is not None:
        log.info("process start-up and imports: %.2f s", startup)
    if threads is not None:
        use_threads(threads)
        if "threads" in inspect.signature(stage).parameters:
            arguments["threads"] = threads
        log.info("threads: %d", threads)
    started = time.perf_counter()
    try:
        result = stage(**arguments)
    except SegsubmitError as err:
        log.error("error: %s", err)
        sys.exit(1)
    except Exception:
        log.exception(
            "unexpected error in %s (a bug: please report it with this log)", stage.__name__
        )
        sys.exit(1)
    log.info("done in %.2f s", time.perf_counter() - started)
    log.info("peak RSS: %.0f MiB, largest child process %.0f MiB", *peak_memory_mib())
    return result


def run_job(log_path, stage, threads=None, **arguments):
    """`run_stage` as a workflow script's whole process: when the stage has succeeded, end
    the process as `exit_without_teardown` does."""
    run_stage(log_path, stage, threads=threads, **arguments)
    exit_without_teardown()


def exit_without_teardown():
    """Exit 0 as Python would, less its final teardown: wait for non-daemon threads, run the
    exit handlers (logging's, multiprocessing's), flush stdout and stderr, then `os._exit`
    without freeing every module and object one by one (torch's teardown took 1.5 s of a CPU
    infer job here; the job's outputs are closed and renamed before)."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def format_rate(count, seconds):
    """Throughput per second, at least 3 significant digits: '672', '1.25', '0.0417' (a slow
    CPU run never shows as a rounded '0')."""
    rate = count / max(seconds, 1e-9)
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"
