"""Running a study's plan: unfinished nodes in dependency order, `jobs` at a time in local worker processes or as
submitit jobs (Slurm), under a lock on the study root; each node's seconds in timings.jsonl, an ETA as it goes,
the tables at the end."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from pathlib import Path

from rlearly.errors import RlearlyError
from rlearly.machine import free_cpus, usable_cpus
from rlearly.study.estimate import RATES, estimate, load_rates
from rlearly.study.nodes import Node, plan
from rlearly.study.spec import StudySpec
from rlearly.study.tables import write_tables

_PRIORITY = {"pretrain": 0, "base": 0, "branch": 1, "eval": 2, "lm_eval": 3}  # start order among ready nodes with --jobs


def run(spec: StudySpec, root: str | Path, log=print, jobs: int = 1, threads: int = 0, executor: str = "pool",
        cluster: str | None = None, params: dict | None = None) -> list[Node]:
    """Run every unfinished node (finished ones are skipped), `jobs` at a time (0: one per usable CPU), each with
    `threads` torch threads (0: the usable CPUs / jobs, or the CPUs other processes leave free for a node that
    runs alone). Local jobs × threads never exceed the usable CPUs (rlearly.machine). Then write the tables.
    `executor="submitit"` sends each node to submitit (Slurm, or `cluster="local"`), `params` its settings."""
    root = Path(root)
    cpus = usable_cpus()
    local = executor == "pool" or cluster == "local"
    if local and jobs > cpus:
        log(f"--jobs {jobs} > the {cpus} usable CPUs: running {cpus} at a time (more would wait on each other)")
    jobs = min(jobs or cpus, cpus) if local else (jobs or cpus)
    if local and threads and jobs * threads > cpus:
        raise RlearlyError(f"--jobs {jobs} × --threads {threads} > the {cpus} usable CPUs")
    root.mkdir(parents=True, exist_ok=True)
    with _Lock(root / ".lock"):
        nodes = plan(spec, root)
        todo = [n for n in nodes if not n.done]
        if any(n.kind == "lm_eval" for n in todo):  # the [eval] error before any node runs, not after hours
            from rlearly.extras import require
            require("lm_eval", "eval", "study eval.lm_eval")
        if any(n.kind == "eval" and n.path.stem in ("sealed", "sealed_hard") for n in todo):
            claim_sealed(spec, log)
        log(f"study {spec.name}: {len(nodes)} nodes, {len(nodes) - len(todo)} done, {len(todo)} to run"
            + (f", {jobs} at a time" if jobs > 1 and todo else ""))
        pace = _Pace(todo, jobs)
        if todo and local:
            log(_estimate_line(todo, min(cpus, jobs * (threads or max(1, cpus // jobs)))))
        if jobs <= 1 and executor == "pool" and todo:
            import torch
            before = torch.get_num_threads()
            torch.set_num_threads(threads or free_cpus())
            try:
                for i, node in enumerate(todo, 1):
                    log(f"[{i}/{len(todo)}] {node.key}")
                    seconds = _timed(node, root)
                    log(f"done {node.key} ({seconds:.0f} s; {pace.step(node, seconds)})")
            finally:
                torch.set_num_threads(before)  # the caller's process keeps its own setting
        elif todo:
            _run_parallel(spec, root, todo, jobs, log, threads, pace, executor, cluster, params, cpus)
        write_tables(spec, root)
    return nodes


def spec_hash(spec: StudySpec) -> str:
    """A study spec's identity: the hash of everything it says (a replicate under --seed is another spec)."""
    blob = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def claim_sealed(spec: StudySpec, log=print, ledger: Path | None = None) -> None:
    """Before a study reads the sealed split: its pretraining must lie within the split's record (data.sealed), and
    reports/SEALED.json must name this very spec, or name none yet (then it is written: this spec is the one frozen
    design that reads it, at this commit). Any other spec is refused in one line."""
    from rlearly.data import sealed
    from rlearly.files import git_commit, write_atomic

    configs = [arm.base_config(ps) for arm in spec.all_arms() if {"sealed", "sealed_hard"} & set(arm.eval.splits)
               for ps in arm.seeds_pretrain()]
    sealed.check_covered(configs)
    ledger = Path(ledger or sealed.LEDGER)
    mine = spec_hash(spec)
    if ledger.is_file():
        held = json.loads(ledger.read_text())
        if held.get("spec_hash") != mine:
            raise RlearlyError(f"the sealed split was read by study {held.get('study')!r} (spec {held.get('spec_hash')}, "
                               f"commit {held.get('commit')}; {ledger}); it is read by that one frozen design only")
        log(f"sealed split: this spec read it first at commit {held.get('commit')}: a replication")
        return
    write_atomic(ledger, json.dumps({"study": spec.name, "spec_hash": mine, "commit": git_commit(),
                                     "first_read": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
    log(f"sealed split: recorded {spec.name} (spec {mine}) in {ledger} as the one study that reads it")


class _Pace:
    """'12/47 nodes done in 3m05s, about 9m left (+ 20 eval nodes not yet timed)'. Nodes differ by orders of
    magnitude (a pretraining run against an evaluation), so the rest is estimated kind by kind: a pretraining
    run by the seconds per unit of `cost` so far, a branch or an evaluation by the mean of its kind so far,
    the sum divided among the `jobs`; kinds not yet timed are counted, not guessed."""

    def __init__(self, todo: list[Node], jobs: int = 1):
        self.left, self.jobs, self.total, self.done = list(todo), max(1, jobs), len(todo), 0
        self.seconds: dict[str, list[float]] = {}
        self.pretrain_cost = 0.0  # the summed cost of the pretraining runs timed so far
        self.t0 = time.perf_counter()

    def step(self, node: Node, seconds: float) -> str:
        self.done += 1
        self.left = [n for n in self.left if n is not node]
        self.seconds.setdefault(node.kind, []).append(seconds)
        self.pretrain_cost += node.cost if node.kind == "pretrain" else 0.0
        spent = f"{self.done}/{self.total} nodes done in {clock(time.perf_counter() - self.t0)}"
        if not self.left:
            return spent
        known, untimed = 0.0, {}
        for n in self.left:
            if n.kind not in self.seconds:
                untimed[n.kind] = untimed.get(n.kind, 0) + 1
            elif n.kind == "pretrain" and n.cost and self.pretrain_cost:
                known += n.cost * sum(self.seconds["pretrain"]) / self.pretrain_cost
            else:
                known += sum(self.seconds[n.kind]) / len(self.seconds[n.kind])
        more = ", ".join(f"{k} {kind} node{'s' * (k > 1)}" for kind, k in untimed.items())
        if len(untimed) == len({n.kind for n in self.left}):
            return f"{spent}; {more} not yet timed"
        return f"{spent}, about {clock(known / self.jobs)} left" + (f" (+ {more} not yet timed)" if more else "")


def _estimate_line(todo: list[Node], cpus: int) -> str:
    """'estimate: about 2h07m for 79 nodes on 2 CPUs (...)', before the first node runs (rlearly.study.estimate)."""
    rates = load_rates()
    e = estimate(todo, cpus, rates)
    if e["seconds"] is None:
        return f"estimate: none (no {RATES.name}); the pace line after each node measures"
    unknown = f"; not counted: {', '.join(e['unknown'])} (no rate)" if e["unknown"] else ""
    return (f"estimate: about {clock(e['seconds'])} for {len(todo)} nodes on {cpus} CPU{'s' * (cpus > 1)} "
            f"({clock(e['node_seconds'])} of node time at rates fitted on {rates['cpu']} to the "
            f"{' and '.join(rates['studies'])} studies, this CPU's matmul at {e['speed']:.2f}x of it; a branch counts "
            f"its most steps, so a plateau ends it sooner{unknown})")


def clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


def _timed(node: Node, root: Path) -> float:
    t0 = time.perf_counter()
    node.run()
    seconds = time.perf_counter() - t0
    log_timing(root, node.key, node.kind, node.arm, seconds, threads=_threads())
    return seconds


def log_timing(folder: Path, key: str, kind: str, arm: str, seconds: float, **extra) -> None:
    """Append one row to `<folder>/timings.jsonl` (key, kind, arm, seconds, ..., finished): the study's nodes,
    and the notebooks of its report, for the stage breakdown (benchmarks/bench_study.py)."""
    row = dict(key=key, kind=kind, arm=arm, seconds=round(seconds, 2), **extra,
               finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with open(Path(folder) / "timings.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def _worker_init() -> None:
    try:  # Linux: die with the runner, so a killed `study run` leaves no worker writing into the study
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_one(spec: StudySpec, root: str, key: str, threads: int) -> float:
    """Worker process: re-plan the study and run the node named `key` (closures do not cross processes).
    `threads` 0 leaves torch's own choice (a cluster job: the cores it was given)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    node = next(n for n in plan(spec, root) if n.key == key)
    return _timed(node, Path(root))


class _Pool:
    """Nodes in `jobs` spawned local processes (concurrent.futures)."""

    def __init__(self, jobs: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)

    def submit(self, node: Node, *args):
        return self.pool.submit(_run_one, *args)

    @staticmethod
    def wait(running) -> list:
        """The futures that finished, once at least one has."""
        from concurrent.futures import FIRST_COMPLETED, wait
        return list(wait(running, return_when=FIRST_COMPLETED).done)

    def close(self):
        self.pool.shutdown()


class _Submitit:
    """Nodes as submitit jobs: Slurm on a cluster, or submitit's local executor (the same path, here). Each job
    re-plans the study from the pickled spec and runs one node, so caching, lineage and timings are the pool's;
    the study lock stays with the runner. `params` go to the executor's update_parameters (slurm_partition,
    timeout_min, cpus_per_task, gpus_per_node, ...); job scripts and logs go to <root>/submitit/."""

    poll_s = 2.0  # submitit jobs are polled: a job's state is a file or a scheduler query

    def __init__(self, root: Path, cluster: str | None, params: dict):
        from rlearly.extras import require
        submitit = require("submitit", "cluster", "study run --executor submitit")
        self.executor = submitit.AutoExecutor(folder=root / "submitit" / "%j", cluster=cluster)
        self.executor.update_parameters(**{"timeout_min": 24 * 60, **params})  # local's own default: 2 minutes

    def submit(self, node: Node, *args):
        self.executor.update_parameters(name=node.key.replace(" ", "_"))
        return _JobFuture(self.executor.submit(_run_one, *args))

    def wait(self, running) -> list:
        """The jobs that finished, once at least one has."""
        while not (finished := [f for f in running if f.done()]):
            time.sleep(self.poll_s)
        return finished

    def close(self):
        pass


class _JobFuture:
    """A submitit job read as a future (done, result); a failed job raises with its error's last line."""

    def __init__(self, job):
        self.job = job

    def done(self) -> bool:
        return self.job.done()

    def result(self) -> float:
        try:
            return self.job.result()
        except Exception as e:  # submitit's FailedJobError: the remote traceback between two rules of dashes
            raise RlearlyError(f"job {self.job.job_id} failed: {_last_error(str(e)) or type(e).__name__} "
                               f"(log: {self.job.paths.stderr})") from None


def _last_error(text: str) -> str:
    """The exception line that ends the traceback inside submitit's failure text, without rlearly's module path."""
    parts = re.split(r"\n-{10,}\n", text)
    trace = parts[1] if len(parts) >= 3 else text
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    return lines[-1].removeprefix("rlearly.errors.") if lines else ""


def _run_parallel(spec: StudySpec, root: Path, todo: list[Node], jobs: int, log, threads: int = 0,
                  pace: _Pace | None = None, executor: str = "pool", cluster: str | None = None,
                  params: dict | None = None, cores: int | None = None) -> None:
    """Dependency-ordered execution, `jobs` nodes at a time: in spawned local processes, each with cores/jobs
    torch threads (the CPUs other processes leave free for a node that starts alone with nothing else ready, e.g. a
    study's only pretraining run), or as submitit jobs (`executor="submitit"`, on `cluster`: slurm, local, or None
    for submitit's choice). `cores`: the usable CPUs (run() has read them)."""
    cores = cores or usable_cpus()
    on_cluster = executor == "submitit" and cluster != "local"
    sized = not threads and not on_cluster  # rlearly sizes the threads: a node alone gets the CPUs left free
    threads = threads or (0 if on_cluster else max(1, cores // jobs))
    pace = pace or _Pace(todo, jobs)
    pending, running, started = list(todo), {}, 0
    is_done = {n.path: n.done for n in plan(spec, root)}
    failure = None
    runner = _Submitit(root, cluster, params or {}) if executor == "submitit" else _Pool(jobs)
    try:
        while pending or running:
            ready = [n for n in pending if all(is_done.get(d, True) for d in n.deps)] if failure is None else []
            ready.sort(key=lambda n: (_PRIORITY[n.kind], -n.cost))  # long pretraining runs first: they gate their arms
            alone = len(ready) == 1 and not running
            for node in ready[:jobs - len(running)]:
                pending.remove(node)
                started += 1
                log(f"[{started}/{len(todo)}] start {node.key}")
                n = free_cpus() if alone and sized else threads
                running[runner.submit(node, spec, str(root), node.key, n)] = node
            if not running:
                break
            for fut in runner.wait(running):
                node = running.pop(fut)
                try:
                    seconds = fut.result()
                    log(f"done {node.key} ({seconds:.0f} s; {pace.step(node, seconds)})")
                    is_done[node.path] = True
                except Exception as e:  # let the others finish, start nothing new, then report
                    failure = failure or (node, e)
    finally:
        runner.close()
    if failure:
        node, e = failure
        if isinstance(e, RlearlyError):
            raise type(e)(f"{node.key}: {e}") from e
        raise RlearlyError(f"{node.key} failed: {type(e).__name__}: {e}") from e


class _Lock:
    """An exclusive lock on the study root, so a second `study run` stops with a clear message."""

    def __init__(self, path: Path):
        self.path, self.fh = path, None

    def __enter__(self):
        import fcntl
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "another process"
            self.fh.close()
            raise RlearlyError(f"study {self.path.parent} is being run by {holder}; wait for it to finish "
                               "(or stop it) and run again") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()}")
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        self.fh.close()  # releases the lock
