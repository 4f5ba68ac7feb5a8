"""A real one-node SLURM cluster on this machine, for tests: install, configure, start, stop.

Debian's packages (slurmctld, slurmd, slurm-client, munge) run as root with all their state,
sockets and logs in one temporary folder, on free ports, so nothing under /etc or /run is used
and a system SLURM (if any) is left alone. Client commands find the cluster through the
`SLURM_CONF` variable in `LocalSlurm.env`. No accounting (slurmdbd): jobs are polled with squeue,
which sees finished jobs for `MIN_JOB_AGE` seconds.

Two things are faked, because the test machine has neither: a GPU (a gres whose device file is a
symlink to /dev/null; a job asking for one gets `CUDA_VISIBLE_DEVICES=0`) and, through
`SlurmdParameters=config_overrides`, a node at least as large as the biggest request of the
profile under test (nothing is enforced: `task/none`, no cgroups).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
COMMANDS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "scontrol")
NODE = "localhost"
MIN_JOB_AGE = 600  # seconds a finished job stays visible to squeue
START_TIMEOUT = 60


def unavailable_reason():
    """Why a local cluster cannot be started here (a one-line reason), or None if it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a local SLURM needs root to start slurmctld/slurmd (CI runs as root)"
    if missing_commands() and not shutil.which("apt-get"):
        return f"SLURM not installed ({', '.join(missing_commands())}) and no apt-get"
    return None


def missing_commands():
    """The SLURM and munge commands not found on PATH."""
    return [name for name in COMMANDS if not shutil.which(name)]


def install_packages():
    """apt-get install Debian's SLURM packages if any command is missing (else do nothing).

    Returns None once every command is there, or a one-line reason why they could not be
    installed. A failing post-install step (e.g. a service that cannot start without systemd)
    does not matter: the daemons are started here, not by the packages.
    """
    if not missing_commands():
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    errors = []
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            last_line = (result.stderr or result.stdout).strip().splitlines()[-1:]
            errors.append(f"`{' '.join(command[:2])}` failed: {' '.join(last_line)}")
    missing = missing_commands()
    return f"{', '.join(missing)} missing after apt-get; {'; '.join(errors)}" if missing else None


def free_port():
    """A TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def detected_node():
    """This machine as slurmd sees it: {'CPUs': int, 'RealMemory': int} (from `slurmd -C`)."""
    first_line = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    fields = dict(item.split("=", 1) for item in first_line.split())
    return {"CPUs": int(fields["CPUs"]), "RealMemory": int(fields["RealMemory"])}


def slurm_conf(root, cpus, memory_mb, gpus):
    """slurm.conf text: one node `localhost` in partitions `cpu` (default) and `gpu`."""
    return f"""\
ClusterName=segsubmittest
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MinJobAge={MIN_JOB_AGE}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=cpu Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={NODE} MaxTime=INFINITE State=UP
"""


def gres_conf(root, gpus):
    """gres.conf text: `gpus` fake GPU devices (symlinks to /dev/null), no autodetection."""
    lines = ["AutoDetect=off"]
    for index in range(gpus):
        device = Path(root) / "dev" / f"nvidia{index}"
        device.parent.mkdir(exist_ok=True)
        device.symlink_to("/dev/null")
        lines.append(f"NodeName={NODE} Name=gpu File={device}")
    return "\n".join(lines) + "\n"


@dataclass
class LocalSlurm:
    """A running one-node cluster; `env` makes sbatch/squeue/srun talk to it."""

    root: Path
    env: dict
    processes: dict = field(default_factory=dict)

    def start_daemon(self, name, command):
        """Start one daemon in the foreground (its pid is ours to stop), output to its log."""
        log = open(self.root / f"{name}.out", "w")  # noqa: SIM115 (kept open for the daemon)
        self.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root
        )

    def wait_until_idle(self):
        """Wait until the node reports idle; raise RuntimeError with the logs if it never does."""
        deadline = time.monotonic() + START_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.logs()}")
            state = self.run("sinfo", "-h", "-N", "-n", NODE, "-o", "%t", check=False).stdout
            if set(state.split()) == {"idle"}:  # one line per partition
                return
            time.sleep(0.5)
        logs = self.logs()
        raise RuntimeError(f"node not idle after {START_TIMEOUT} s (state {state!r}):\n{logs}")

    def run(self, *command, check=True):
        """Run a SLURM client command against this cluster."""
        return subprocess.run(command, capture_output=True, text=True, env=self.env, check=check)

    def logs(self):
        """The tail of every daemon's log, for error messages."""
        parts = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")):
            parts.append(f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-15:]))
        return "\n".join(parts)

    def stop(self):
        """Cancel any job left, then stop slurmd, slurmctld and munged by their pids."""
        if "slurmctld" in self.processes:
            self.run("scancel", "--user", "root", check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_cluster(root, min_cpus=1, min_memory_mb=1, gpus=1):
    """Configure and start munged, slurmctld and slurmd under `root`; wait for the node.

    The node advertises at least `min_cpus` CPUs and `min_memory_mb` MB (see the module
    docstring). Returns a LocalSlurm; call its stop() in every case.
    """
    root = Path(root)
    for folder in ("munge", "state", "spool"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o755)  # munged wants its socket reachable by all
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    node = detected_node()
    conf = root / "slurm.conf"
    conf.write_text(
        slurm_conf(root, max(node["CPUs"], min_cpus), max(node["RealMemory"], min_memory_mb), gpus)
    )
    (root / "gres.conf").write_text(gres_conf(root, gpus))
    cluster = LocalSlurm(root, client_env(root, conf))
    try:
        launch_daemons(cluster, key)
        cluster.wait_until_idle()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def client_env(root, conf):
    """The environment for client commands: `SLURM_CONF`, and an `srun` that keeps it.

    snakemake-executor-plugin-slurm-jobstep (0.6.1) removes every `SLURM_*` variable but the
    job's ids before it calls `srun` inside a job, `SLURM_CONF` included; a real cluster has its
    config at /etc/slurm, this one does not, so `srun` is a shim that sets it again.
    """
    shim = Path(root) / "bin" / "srun"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {shutil.which("srun")} "$@"\n')
    shim.chmod(0o755)
    path = os.pathsep.join([str(shim.parent), os.environ.get("PATH", "")])
    return {**os.environ, "SLURM_CONF": str(conf), "PATH": path}


def launch_daemons(cluster, key):
    """munged first (slurmctld and slurmd authenticate through it), then the controller, then
    the node daemon once the controller answers."""
    munge = cluster.root / "munge"
    cluster.start_daemon(
        "munged",
        ["munged", "--foreground", "--force", f"--key-file={key}",
         f"--socket={munge}/munge.socket", f"--pid-file={munge}/munged.pid",
         f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed"],
    )  # fmt: skip
    wait_for(lambda: (munge / "munge.socket").exists(), "munged socket", cluster)
    conf = cluster.env["SLURM_CONF"]
    cluster.start_daemon("slurmctld", ["slurmctld", "-D", "-c", "-f", conf])
    answers = lambda: cluster.run("scontrol", "ping", check=False).returncode == 0  # noqa: E731
    wait_for(answers, "slurmctld", cluster)
    cluster.start_daemon("slurmd", ["slurmd", "-D", "-N", NODE, "-f", conf])


def wait_for(condition, what, cluster):
    """Poll `condition` until true; raise RuntimeError naming `what` after START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not up after {START_TIMEOUT} s:\n{cluster.logs()}")
        time.sleep(0.2)
