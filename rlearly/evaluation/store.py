"""The sample store: every evaluation sample kept once, in parquet, and reused (docs/DESIGN.md §5).

Owns: the on-disk layout, the row schema, deduplication by key, the "what is still to sample" query,
per-problem correct counts for pass@k, and compaction of small part files.

Key: (task, checkpoint_id, split, problem_id, sample_index, seed). `task` is the task's id for that split,
its name and a fingerprint of what it scores (rlearly.tasks.Task.task_id: the problems' text and answers,
the scoring rule, the world's generator version), so a sample is never reused for another task, dataset,
world or scoring. Layout:

    <root>/STORE.json                                        {"schema": 2}
    <root>/<task dir>/<checkpoint dir>/<split dir>/part-<time ns>-<pid>-<uuid>.parquet

one folder per (task, checkpoint, split) so a query reads only its own parts (folder names are the id made
file-safe plus a short hash, so ids with slashes are fine). A store written before samples recorded their
task (no STORE.json) is refused with one line saying to remove it. Parts are written to a temp file then
`os.replace`d, and never rewritten; every data page carries a CRC32 checksum, verified on read, so a
truncated part or a corrupted page is an error naming the part, not different samples. When a folder
holds more than `max_parts` parts they are merged into one new part (written atomically, the old parts
removed after), so reading stays a few files. Readers keep the first row of a key in part-name order;
`add` drops keys already stored, so a sample is never counted twice even when two writers race.

`answer` is the extracted answer as a nullable integer (the synthetic and GSM8K tasks); `answer_text`
keeps the extracted string for answers that are not integers (MATH: "\\frac{1}{2}").
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rlearly.errors import DataError, StorageError

KEY = ("task", "checkpoint_id", "split", "problem_id", "sample_index", "seed")
STORE_SCHEMA = 2  # 1: samples without their task (refused); 2: keyed by task id
MARKER = "STORE.json"
SCHEMA = pa.schema([
    ("task", pa.string()),  # the task id of the split (Task.task_id): name + fingerprint of what it scores
    ("checkpoint_id", pa.string()),
    ("split", pa.string()),
    ("problem_id", pa.string()),
    ("sample_index", pa.int64()),
    ("seed", pa.int64()),
    ("completion", pa.string()),  # decoded completion text, prompt excluded
    ("tokens", pa.int64()),  # completion length in tokens
    ("answer", pa.int64()),  # extracted integer answer; null when none or not an integer
    ("answer_text", pa.string()),  # extracted answer as text; null when none
    ("correct", pa.bool_()),
    ("logprob", pa.float64()),  # sum of the completion's token log-probs under the sampling model
    ("finished", pa.bool_()),  # ended on a stop token (False: cut at max_new_tokens)
    ("temperature", pa.float64()),
    ("top_p", pa.float64()),
    ("prompt_mode", pa.string()),  # "zero-shot" or "few-shot"
    ("max_new_tokens", pa.int64()),  # token budget the sample was drawn with (null: not recorded)
    ("shots", pa.int64()),  # few-shot exemplars in the prompt (0 for zero-shot; null: not recorded)
    ("backend", pa.string()),  # sampling engine: torch or vllm (null: not recorded)
    ("dtype", pa.string()),  # precision the sampler computed in: fp32 or bf16 (null: fp32, rows from before bf16)
])
PROMPT_MODES = ("zero-shot", "few-shot")
_OPTIONAL = {"answer": None, "answer_text": None, "max_new_tokens": None, "shots": None, "backend": None,
             "dtype": None}
_PROTOCOL = ("max_new_tokens", "shots", "backend", "dtype")  # compared exactly when both sides record them
_LATE = {"dtype": "fp32"}  # columns parts written before them lack, and what a missing value means
_STR = ("task", "checkpoint_id", "split", "problem_id", "completion", "prompt_mode")
_INT = ("sample_index", "seed", "tokens")
_FLOAT = ("logprob", "temperature", "top_p")
_BOOL = ("correct", "finished")
_INT_TEXT = re.compile(r"[+-]?\d+")


def _safe(name: str) -> str:
    """A folder name for an id: readable prefix plus a hash, so distinct ids never collide."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name)[:80].lstrip(".") + "-" + digest


def _check_row(i: int, row: dict) -> dict:
    """A validated copy of one row, with answer/answer_text filled in; DataError names the field."""
    if not isinstance(row, dict):
        raise DataError(f"sample row {i} is a {type(row).__name__}, not a dict")
    unknown = sorted(set(row) - set(SCHEMA.names))
    if unknown:
        raise DataError(f"sample row {i} has unknown field(s) {unknown}; known: {', '.join(SCHEMA.names)}")
    missing = [f for f in SCHEMA.names if f not in row and f not in _OPTIONAL]
    if missing:
        raise DataError(f"sample row {i} lacks field(s) {missing}")
    out = {**_OPTIONAL, **row}
    for f in _STR:
        if not isinstance(out[f], str):
            raise DataError(f"sample row {i}: field '{f}' must be a string, got {out[f]!r}")
    for f in _INT:
        v = out[f]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise DataError(f"sample row {i}: field '{f}' must be an integer, got {v!r}")
        out[f] = int(v)
    for f in _FLOAT:
        v = out[f]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise DataError(f"sample row {i}: field '{f}' must be a number, got {v!r}")
        out[f] = float(v)
    for f in _BOOL:
        if not isinstance(out[f], (bool, np.bool_)):
            raise DataError(f"sample row {i}: field '{f}' must be a bool, got {out[f]!r}")
        out[f] = bool(out[f])
    for f in _PROTOCOL:
        v = out[f]
        ok = v is None or (isinstance(v, str) if f in ("backend", "dtype") else
                           isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))
        if not ok:
            raise DataError(f"sample row {i}: field '{f}' has the wrong type: {v!r}")
    if out["sample_index"] < 0:
        raise DataError(f"sample row {i}: sample_index={out['sample_index']} must be >= 0")
    if out["prompt_mode"] not in PROMPT_MODES:
        raise DataError(f"sample row {i}: prompt_mode={out['prompt_mode']!r} must be one of {PROMPT_MODES}")
    ans, text = out["answer"], out["answer_text"]
    if isinstance(ans, (bool, np.bool_)) or not (ans is None or isinstance(ans, (int, np.integer, str))):
        raise DataError(f"sample row {i}: field 'answer' must be an int, a string or None, got {ans!r}")
    if text is not None and not isinstance(text, str):
        raise DataError(f"sample row {i}: field 'answer_text' must be a string or None, got {text!r}")
    if isinstance(ans, str):  # an extracted answer as text: keep it, and its integer value when it has one
        text = ans if text is None else text
        ans = int(ans) if _INT_TEXT.fullmatch(ans.strip()) else None
    elif ans is not None:
        ans = int(ans)
        text = str(ans) if text is None else text
    out["answer"], out["answer_text"] = ans, text
    return out


def _empty_frame() -> pd.DataFrame:
    return _to_pandas(SCHEMA.empty_table())


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    df["answer"] = df["answer"].astype("Int64")  # nullable: an int64 column with nulls reads back as float
    return df


class SampleStore:
    """Samples on disk under `root`, one folder per (task, checkpoint, split); see the module docstring."""

    def __init__(self, root: str | os.PathLike, max_parts: int = 32):
        self.root = Path(root)
        self.max_parts = int(max_parts)
        self._parts: dict[Path, dict[str, pd.DataFrame]] = {}  # folder -> part name -> rows (parts never change)
        self._frames: dict[Path, tuple[tuple[str, ...], pd.DataFrame]] = {}  # folder -> (parts, deduped rows)
        self._check_schema()

    def _check_schema(self) -> None:
        """A store of another schema (one written before samples recorded their task) is one error line."""
        marker = self.root / MARKER
        if marker.is_file():
            try:
                schema = json.loads(marker.read_text()).get("schema")
            except (ValueError, AttributeError):
                schema = None
            if schema == STORE_SCHEMA:
                return
            raise DataError(f"sample store {self.root} has schema {schema!r}, not {STORE_SCHEMA}; remove it "
                            f"(rm -r {self.root}) and evaluate again to resample")
        if self.root.is_dir() and any(p.is_dir() for p in self.root.iterdir()):
            raise DataError(f"sample store {self.root} was written before samples recorded their task (schema 1), "
                            f"so its samples could be another task's; remove it (rm -r {self.root}) and evaluate "
                            "again to resample")

    def _mark(self) -> None:
        if not (self.root / MARKER).is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{MARKER}.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"schema": STORE_SCHEMA}) + "\n")
            os.replace(tmp, self.root / MARKER)

    # ------------------------------------------------------------ reading

    def _dir(self, task: str, checkpoint_id: str, split: str) -> Path:
        return self.root / _safe(str(task)) / _safe(str(checkpoint_id)) / _safe(str(split))

    @staticmethod
    def _part_names(folder: Path) -> list[str]:
        if not folder.is_dir():
            return []
        return sorted(f for f in os.listdir(folder) if f.startswith("part-") and f.endswith(".parquet"))

    @staticmethod
    def _read_part(path: Path) -> pd.DataFrame:
        try:
            table = pq.read_table(path, page_checksum_verification=True)  # parts without checksums: unchecked
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else ""
            raise DataError(f"sample store part {path} is corrupt or truncated ({type(e).__name__}: {first}); "
                            f"delete that file and re-run the evaluation to resample it") from None
        for f in _LATE:
            if f not in table.column_names:  # a part from before the column existed
                table = table.append_column(f, pa.nulls(len(table), SCHEMA.field(f).type))
        missing = [f for f in SCHEMA.names if f not in table.column_names]
        if missing:
            raise DataError(f"sample store part {path} lacks column(s) {missing}; it was not written by SampleStore")
        try:
            table = table.select(SCHEMA.names).cast(SCHEMA)
        except (pa.ArrowException, ValueError) as e:
            raise DataError(f"sample store part {path} has wrong column types ({e}); delete it and resample") from None
        return _to_pandas(table)

    def _frame(self, task: str, checkpoint_id: str, split: str) -> pd.DataFrame:
        """All rows of one (task, checkpoint, split), first row per key, in part order (cached; do not mutate)."""
        folder = self._dir(task, checkpoint_id, split)
        for attempt in range(3):  # a part may vanish under us when another process compacts the folder
            names = tuple(self._part_names(folder))
            cached = self._frames.get(folder)
            if cached is not None and cached[0] == names:
                return cached[1]
            parts = self._parts.setdefault(folder, {})
            try:
                for name in names:
                    if name not in parts:
                        parts[name] = self._read_part(folder / name)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            for gone in set(parts) - set(names):
                del parts[gone]
            frames = [parts[name] for name in names]
            df = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
            df = df.drop_duplicates(subset=list(KEY), keep="first").reset_index(drop=True)
            self._frames[folder] = (names, df)
            return df
        raise AssertionError("unreachable")  # pragma: no cover

    def load(self, task: str, checkpoint_id: str, split: str, seed: int | None = None) -> pd.DataFrame:
        """Stored samples of a checkpoint on a task's split (one seed or all), sorted by problem, index, seed."""
        df = self._frame(task, checkpoint_id, split)
        if seed is not None:
            df = df[df["seed"] == int(seed)]
        return df.sort_values(["problem_id", "sample_index", "seed"], kind="stable").reset_index(drop=True)

    def _check_settings(self, df: pd.DataFrame, where: str, temperature, top_p, prompt_mode, **protocol) -> None:
        """Stored samples under the same key must come from the same sampling protocol."""
        for field, want in protocol.items():
            if want is not None and len(df) and field in df:
                have = df[field].fillna(_LATE[field]) if field in _LATE else df[field].dropna()
                bad = have != want
                if bad.any():
                    raise DataError(f"{where}: stored samples use {field}={have[bad].iloc[0]}, not {want}; "
                                    f"use another seed or store folder for a different protocol")
        for field, want in (("temperature", temperature), ("top_p", top_p)):
            if want is not None and len(df):
                bad = ~np.isclose(df[field].to_numpy(), float(want))
                if bad.any():
                    raise DataError(f"{where}: stored samples use {field}={df[field][bad].iloc[0]}, not {want}; "
                                    f"use another seed or store folder for a different protocol")
        if prompt_mode is not None and len(df):
            bad = df["prompt_mode"] != prompt_mode
            if bad.any():
                raise DataError(f"{where}: stored samples are {df['prompt_mode'][bad].iloc[0]}, not {prompt_mode}; "
                                f"use another seed or store folder for a different protocol")

    def missing(self, task: str, checkpoint_id: str, split: str, problem_ids, n: int, seed: int,
                temperature: float | None = None,
                top_p: float | None = None, prompt_mode: str | None = None, **protocol) -> list[tuple[str, int]]:
        """(problem_id, sample_index) pairs among problem_ids x range(n) not stored yet for this seed.

        Given temperature/top_p/prompt_mode (and max_new_tokens/shots/backend/dtype as keywords), stored samples of
        these problems drawn otherwise are an error (they would be silently reused under the wrong protocol).
        """
        unknown = set(protocol) - set(_PROTOCOL)
        if unknown:
            raise TypeError(f"unknown protocol field(s) {sorted(unknown)}; known: {', '.join(_PROTOCOL)}")
        pids = [str(p) for p in problem_ids]
        df = self._frame(task, checkpoint_id, split)
        df = df[(df["seed"] == int(seed)) & (df["sample_index"] < int(n)) & df["problem_id"].isin(pids)]
        where = f"task {task!r} checkpoint {checkpoint_id!r} split {split!r} seed {seed}"
        self._check_settings(df, where, temperature, top_p, prompt_mode, **protocol)
        have = set(zip(df["problem_id"], df["sample_index"].astype(int)))
        return [(p, i) for p in pids for i in range(int(n)) if (p, i) not in have]

    def _first_n(self, task: str, checkpoint_id: str, split: str, n: int, seed: int,
                 problem_ids) -> tuple[list[str], pd.DataFrame]:
        df = self._frame(task, checkpoint_id, split)
        df = df[(df["seed"] == int(seed)) & (df["sample_index"] < int(n))]
        where = f"task {task!r} checkpoint {checkpoint_id!r} split {split!r} seed {seed}"
        pids = sorted(df["problem_id"].unique()) if problem_ids is None else [str(p) for p in problem_ids]
        if not pids:
            raise DataError(f"{where}: no samples stored; sample first (SampleStore.missing lists what to draw)")
        have = df.groupby("problem_id").size().reindex(pids, fill_value=0)
        short = have[have < int(n)]
        if len(short):
            raise DataError(f"{where}: {len(short)} of {len(pids)} problems have fewer than n={n} samples "
                            f"(e.g. {short.index[0]!r} has {int(short.iloc[0])}); sample the gaps that "
                            f"SampleStore.missing() lists first")
        return pids, df

    def counts(self, task: str, checkpoint_id: str, split: str, n: int, seed: int,
               problem_ids=None) -> tuple[list[str], np.ndarray]:
        """(problem_ids, correct counts among sample indices 0..n-1): the input of pass@k.

        Problems default to every problem with samples, sorted; each needs all n samples (else DataError).
        """
        pids, df = self._first_n(task, checkpoint_id, split, n, seed, problem_ids)
        c = df.groupby("problem_id")["correct"].sum().reindex(pids, fill_value=0)
        return pids, c.to_numpy(dtype=np.int64)

    def correct_sets(self, task: str, checkpoint_id: str, split: str, n: int, seed: int,
                     problem_ids=None) -> tuple[list[str], list[list[str]]]:
        """(problem_ids, correct completions among sample indices 0..n-1): the input of distinct_correct."""
        pids, df = self._first_n(task, checkpoint_id, split, n, seed, problem_ids)
        groups = df[df["correct"]].groupby("problem_id")["completion"].apply(list)
        return pids, [groups.get(p, []) for p in pids]

    # ------------------------------------------------------------ writing

    def _write_part(self, folder: Path, table: pa.Table, name: str | None = None) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        name = name or f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".tmp-{uuid.uuid4().hex}.parquet"
        try:
            pq.write_table(table, tmp, write_page_checksum=True)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
        except OSError as e:  # disk full: the stored parts are untouched, the samples are drawn again later
            raise StorageError.from_os(folder / name, e) from e
        finally:
            if tmp.exists():
                tmp.unlink()
        return name

    def add(self, rows: list[dict]) -> int:
        """Store new samples; rows whose key is stored already (or repeats within `rows`) are dropped,
        keeping the first. Writes one new part file per (task, checkpoint, split). Returns rows written."""
        checked = [_check_row(i, r) for i, r in enumerate(rows)]
        by_folder: dict[tuple[str, str, str], list[dict]] = {}
        for r in checked:
            by_folder.setdefault((r["task"], r["checkpoint_id"], r["split"]), []).append(r)
        if checked:
            self._mark()
        written = 0
        for (task, ckpt, split), group in by_folder.items():
            df = self._frame(task, ckpt, split)
            seen = set(zip(df["problem_id"], df["sample_index"], df["seed"]))
            new = []
            for r in group:
                key = (r["problem_id"], r["sample_index"], r["seed"])
                if key not in seen:
                    seen.add(key)
                    new.append(r)
            if not new:
                continue
            folder = self._dir(task, ckpt, split)
            self._write_part(folder, pa.Table.from_pylist(new, schema=SCHEMA))
            written += len(new)
            if len(self._part_names(folder)) > self.max_parts:
                self.compact(task, ckpt, split)
        return written

    def compact(self, task: str, checkpoint_id: str, split: str) -> None:
        """Merge the parts of one (task, checkpoint, split) into one new part, then remove the old ones.

        The merged part is named after the newest part it replaces (`...-c<uuid>` sorts right after it),
        so parts written meanwhile by other processes still come later in first-row-wins order.
        """
        folder = self._dir(task, checkpoint_id, split)
        names = self._part_names(folder)
        if len(names) <= 1:
            return
        df = self._frame(task, checkpoint_id, split)
        names = list(self._frames[folder][0])  # exactly the parts that df holds
        stamp = names[-1].split("-")[1]
        table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
        self._write_part(folder, table, f"part-{stamp}-c{uuid.uuid4().hex[:8]}.parquet")
        for name in names:
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass  # another process compacted too; the duplicate rows dedupe on read
        self._frames.pop(folder, None)

