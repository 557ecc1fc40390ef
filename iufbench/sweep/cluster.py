"""Ray: join a running cluster (`--ray-address`) or start a local instance, check that it has the
resources the jobs ask for, and the environment every job's worker process gets."""
from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlparse

from iufbench.backbones import cache_dir
from iufbench.errors import ConfigError

_REACH_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """A host:port (or ray://host:port) that does not answer fails in seconds, not after Ray's own
    minute of retries."""
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if parsed.hostname is None or parsed.port is None:
        raise ConfigError(f"--ray-address '{address}' must look like HOST:PORT (e.g. 10.0.0.1:6379), "
                          "ray://HOST:10001 or auto")
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=_REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at --ray-address {address} ({exc}); start one with "
                          "`ray start --head` on that machine, or fix the address") from exc


def connect(address: str | None, local_cpus: int | None = None) -> bool:
    """Join the cluster at `address`, else start a local Ray on `local_cpus` cores (default: all of
    this machine's); a Ray already initialised in this process (a test, a notebook) is used as it
    is. True when this call started Ray here (the caller shuts it down)."""
    import ray  # noqa: PLC0415  (slow import, only for sweeps)

    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else local_cpus, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")
    except ConnectionError as exc:
        raise ConfigError(f"cannot join the Ray cluster at --ray-address {address}: {exc}") from exc
    return address is None


def check_resources(cpus_per_job: int, gpus_per_job: float) -> None:
    """A job no node can hold would wait forever: refuse it with what the cluster has."""
    import ray  # noqa: PLC0415

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    if gpus_per_job > 0 and gpus == 0:
        raise ConfigError(f"--gpus-per-job {gpus_per_job} asks for GPUs, but the Ray cluster has none; use "
                          "--gpus-per-job 0 (CPU jobs) or join a cluster with GPU nodes")
    if gpus_per_job > gpus:
        raise ConfigError(f"--gpus-per-job {gpus_per_job} is more than any node has (at most {gpus:g} GPUs)")
    if cpus_per_job > cpus:
        raise ConfigError(f"--cpus-per-job {cpus_per_job} is more than any node has (at most {cpus:g} CPUs)")


def worker_env(cpus_per_job: int, offline: bool) -> dict[str, Any]:
    """runtime_env of every job: its CPU share as torch's thread count, the same feature cache and
    synthetic data as the driver, no progress bars, no hub look-ups when no protocol needs the hub,
    and the driver's PYTHONPATH (a checkout that is not installed)."""
    env = {"OMP_NUM_THREADS": str(cpus_per_job), "MKL_NUM_THREADS": str(cpus_per_job),
           "IUFBENCH_CACHE": str(cache_dir()), "TQDM_DISABLE": "1"}
    if offline or os.environ.get("HF_HUB_OFFLINE"):
        env["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", "1")
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {"env_vars": env}
