"""Files and the facts every layer records: atomic writes, JSONL logs, progress bars, timers, sha256 digests, and
the git commit of the code that made an artifact.

Files are written atomically (a hidden temp file, fsync, rename); a write that fails (disk full) raises
StorageError naming the file and leaves the earlier version in place.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rlearly.errors import DataError, StorageError

PACKAGE = Path(__file__).resolve().parent  # rlearly/
REPO = PACKAGE.parent  # the checkout holding notebooks/ and studies/ (the package is installed editable from it)


def write_atomic(path: str | Path, text: str) -> None:
    """Replace `path` by `text` all at once: readers see the old file or the new one, never a part.
    On failure (disk full) the temp file is removed, the old file is untouched and StorageError names `path`."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StorageError.from_os(path, e) from e
        raise


class MetricsLog:
    """Append-only metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, **row) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise StorageError.from_os(self.path, e) from e

    def truncate_after(self, step: int) -> None:
        """On resume: drop rows logged after the step we restart from (they will be logged again), and a
        last row torn by a crash mid-write. A malformed row anywhere else is an error naming the line."""
        if not self.path.exists():
            return
        lines = [l for l in self.path.read_text().splitlines() if l.strip()]
        keep = []
        for i, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # torn by a crash while being appended: it is logged again
                raise DataError(f"{self.path}: line {i + 1} is not valid JSON; the log is corrupt") from None
            if row.get("step", 0) <= step:
                keep.append(line)
        write_atomic(self.path, "".join(l + "\n" for l in keep))


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a JSONL log ([] if there is none); a malformed line is a DataError naming the file and line."""
    p = Path(path)
    rows = []
    for i, line in enumerate(p.read_text().splitlines() if p.exists() else [], 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(f"{p}: line {i} is not valid JSON; the log is corrupt") from None
    return rows


def progress(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    """A tqdm bar that reads well in a terminal and, refreshed less often, in papermill/CI logs."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0, file=sys.stderr)


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def lap(self) -> float:
        t, self.t0 = self.t0, time.perf_counter()
        return self.t0 - t


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str | None:
    """The commit of the checkout the code runs from, 12 hex digits with "-dirty" when tracked files differ from
    it (`git describe --always --dirty`); None outside git. What every artifact, report and benchmark records."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=PACKAGE,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
