"""The machine a process runs on: the CPUs it may use, how many of them others keep busy, and whether its CPU
computes bf16 in hardware.

`os.cpu_count()` counts the machine's CPUs; a process may use fewer: its affinity mask (taskset, a Slurm
allocation) and its cgroup's CPU quota (a container's `cpu.max`, or cgroup v1's `cpu.cfs_quota_us`). A study
that starts more torch threads than that, or than what other processes leave free, does not run slower by the
share it lost but many times slower (threads wait at every barrier for the one that is descheduled: 17× measured
at 89f0fd4), so jobs × threads is sized from these numbers.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _quota(cgroup: Path) -> float | None:
    """CPUs the cgroup quota allows (quota / period), or None without a quota. cgroup v2 (`cpu.max`, "max 100000"
    or "200000 100000") at this process's own cgroup path or the root, then cgroup v1 (`cpu.cfs_quota_us`)."""
    own = None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = line[3:].lstrip("/")
    except OSError:
        pass
    for d in ([cgroup / own] if own else []) + [cgroup]:
        try:
            quota, period = (d / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 else quota / period


def _cpuinfo(field: str) -> str | None:
    """The value of `field` for the first CPU in /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    return set((_cpuinfo("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name, as `lscpu` shows it (timings are compared only within one model)."""
    import platform
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def fast_cpu_bf16(flags: set[str] | None = None) -> bool:
    """Does this CPU multiply bf16 in hardware (AMX-BF16 or AVX512-BF16)? Elsewhere bf16 autocast is emulated and
    slower than fp32."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def usable_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may run on: its affinity mask, capped by its cgroup's quota (rounded up), at least 1."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    q = _quota(cgroup)
    return max(1, min(n, math.ceil(q - 1e-9)) if q is not None else n)


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat's first line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cpus(seconds: float = 0.3) -> float:
    """CPUs busy over the next `seconds` (by every process, this one included: call it when this process is
    idle), from /proc/stat; 0.0 where there is no /proc."""
    try:
        b0, t0 = _busy_ticks()
        time.sleep(seconds)
        b1, t1 = _busy_ticks()
    except (OSError, ValueError, IndexError):
        return 0.0
    cpus = os.cpu_count() or 1
    return cpus * (b1 - b0) / max(1, t1 - t0)


def free_cpus(cgroup: Path = CGROUP, seconds: float = 0.3) -> int:
    """The usable CPUs less those other processes keep busy right now (at least 1): the threads for a job that
    would otherwise take the whole machine."""
    return max(1, usable_cpus(cgroup) - round(busy_cpus(seconds)))
