"""The parquet sample store (rlearly.evaluation.store): keys, gaps, counts, dedup, corruption, round trip, compaction."""
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlearly.errors import DataError
from rlearly.evaluation.passk import distinct_correct
from rlearly.evaluation.store import SCHEMA, SampleStore

CKPT = "runs/demo/ckpt-0000100"  # slashes in ids are fine
TASK = "synthetic-0123456789abcdef"


def row(pid, i, seed=0, correct=True, ckpt=CKPT, split="test", **kw):
    r = dict(task=TASK, checkpoint_id=ckpt, split=split, problem_id=pid, sample_index=i, seed=seed,
             completion=f"{pid} sample {i} \\boxed{{{i}}}", tokens=5 + i, answer=i, correct=correct,
             logprob=-1.25 * (i + 1), finished=True, temperature=0.6, top_p=0.95, prompt_mode="few-shot")
    r.update(kw)
    return r


def parts(store, ckpt=CKPT, split="test"):
    folder = store._dir(TASK, ckpt, split)
    return sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))


def test_missing_lists_exactly_the_gaps(tmp_path):
    s = SampleStore(tmp_path)
    assert s.missing(TASK, CKPT, "test", ["a", "b"], 2, seed=0) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert s.add([row("a", 0), row("a", 1), row("a", 3), row("b", 2)]) == 4
    assert s.missing(TASK, CKPT, "test", ["a"], 2, seed=0) == []
    assert s.missing(TASK, CKPT, "test", ["a", "b", "c"], 4, seed=0) == [
        ("a", 2), ("b", 0), ("b", 1), ("b", 3), ("c", 0), ("c", 1), ("c", 2), ("c", 3)]
    # another seed, split or checkpoint shares nothing
    assert len(s.missing(TASK, CKPT, "test", ["a"], 2, seed=1)) == 2
    assert len(s.missing(TASK, CKPT, "train", ["a"], 2, seed=0)) == 2
    assert len(s.missing(TASK, CKPT + "x", "test", ["a"], 2, seed=0)) == 2


def test_missing_refuses_samples_from_another_protocol(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0)])
    assert s.missing(TASK, CKPT, "test", ["a"], 1, 0, temperature=0.6, top_p=0.95, prompt_mode="few-shot") == []
    with pytest.raises(DataError, match="temperature=0.6, not 1.0"):
        s.missing(TASK, CKPT, "test", ["a"], 1, 0, temperature=1.0)
    with pytest.raises(DataError, match="few-shot, not zero-shot"):
        s.missing(TASK, CKPT, "test", ["a"], 1, 0, prompt_mode="zero-shot")


def test_counts_by_hand(tmp_path):
    s = SampleStore(tmp_path)
    # a: 1,0,1,1 (+ index 4 correct, beyond n=4); b: 0,0,0,0; c: 1,1,1,1 under seed 0; c under seed 7: 0
    rows = [row("a", i, correct=c) for i, c in enumerate([True, False, True, True, True])]
    rows += [row("b", i, correct=False) for i in range(4)]
    rows += [row("c", i) for i in range(4)] + [row("c", i, seed=7, correct=False) for i in range(4)]
    s.add(rows[:6])
    s.add(rows[6:])
    pids, c = s.counts(TASK, CKPT, "test", n=4, seed=0)
    assert pids == ["a", "b", "c"] and c.tolist() == [3, 0, 4] and c.dtype == np.int64
    assert s.counts(TASK, CKPT, "test", n=5, seed=0, problem_ids=["a"])[1].tolist() == [4]
    assert s.counts(TASK, CKPT, "test", n=4, seed=7)[1].tolist() == [0]
    assert s.counts(TASK, CKPT, "test", n=2, seed=0, problem_ids=["c", "a"]) == (["c", "a"], pytest.approx([2, 1]))
    with pytest.raises(DataError, match="fewer than n=5 samples"):
        s.counts(TASK, CKPT, "test", n=5, seed=0)  # b and c have 4
    with pytest.raises(DataError, match="no samples stored"):
        s.counts(TASK, CKPT, "hard", n=1, seed=0)


def test_duplicates_are_never_double_counted(tmp_path):
    s = SampleStore(tmp_path)
    assert s.add([row("a", 0, correct=True), row("a", 0, correct=False, completion="second")]) == 1
    assert s.add([row("a", 0, correct=True), row("a", 1, correct=True)]) == 1  # only index 1 is new
    assert s.add([row("a", 0), row("a", 1)]) == 0
    assert len(parts(s)) == 2  # nothing written for an all-duplicate batch
    df = s.load(TASK, CKPT, "test")
    assert len(df) == 2 and df["completion"][0] == "a sample 0 \\boxed{0}"
    assert s.counts(TASK, CKPT, "test", 2, 0)[1].tolist() == [2]
    # a racing writer that bypassed add(): the first part in name order wins on read
    folder = s._dir(TASK, CKPT, "test")
    late = pa.Table.from_pylist([{**row("a", 0, correct=False), "answer_text": "0"}], schema=SCHEMA)
    pq.write_table(late, folder / "part-99999999999999999999-0-zz.parquet")
    assert SampleStore(tmp_path).counts(TASK, CKPT, "test", 2, 0)[1].tolist() == [2]


def test_corrupt_part_names_the_file(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0)])
    s.add([row("a", 1)])
    victim = s._dir(TASK, CKPT, "test") / parts(s)[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated
    fresh = SampleStore(tmp_path)
    with pytest.raises(DataError, match=victim.name) as e:
        fresh.load(TASK, CKPT, "test")
    assert "corrupt or truncated" in str(e.value) and "\n" not in str(e.value)
    victim.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=victim.name):
        SampleStore(tmp_path).counts(TASK, CKPT, "test", 1, 0)


def test_a_flipped_byte_in_a_part_is_caught_by_its_page_checksum(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0, completion="The answer is 12345.")])
    victim = s._dir(TASK, CKPT, "test") / parts(s)[0]
    data = victim.read_bytes()
    at = data.index(b"answer is 12345")
    victim.write_bytes(data[:at] + b"b" + data[at + 1:])  # still a valid parquet file: "bnswer is 12345"
    with pytest.raises(DataError, match=f"{victim.name} is corrupt or truncated") as e:
        SampleStore(tmp_path).load(TASK, CKPT, "test")
    assert "\n" not in str(e.value)
    # a part written without page checksums (stores from before they were added) is still read
    pq.write_table(pa.Table.from_pylist([row("a", 0)], schema=SCHEMA), victim)
    assert SampleStore(tmp_path).load(TASK, CKPT, "test")["completion"].tolist() == ["a sample 0 \\boxed{0}"]


def test_round_trip_of_every_column(tmp_path):
    s = SampleStore(tmp_path)
    rows = [row("p1", 0, answer=None, correct=False, finished=False, logprob=-0.5, tokens=96),
            row("p1", 1, answer=-42, prompt_mode="zero-shot", temperature=1.0, top_p=1.0),
            row("p2", 0, answer="\\frac{1}{2}", completion="x = \\boxed{\\frac{1}{2}} ünïcödé"),
            row("p2", 1, answer="17", logprob=np.float32(-3.5), tokens=np.int64(7), correct=np.bool_(True))]
    s.add(rows)
    df = SampleStore(tmp_path).load(TASK, CKPT, "test")
    assert list(df.columns) == SCHEMA.names
    assert df["answer"].dtype == "Int64"
    assert df["answer"].isna().tolist() == [True, False, True, False]
    assert df["answer"][1] == -42 and df["answer"][3] == 17
    assert df["answer_text"].tolist()[1:] == ["-42", "\\frac{1}{2}", "17"] and pd.isna(df["answer_text"][0])
    assert df["completion"][2].endswith("ünïcödé")
    assert df["tokens"].tolist() == [96, 6, 5, 7] and df["tokens"].dtype == np.int64
    assert df["logprob"].tolist() == [-0.5, -2.5, -1.25, -3.5]
    assert df["correct"].tolist() == [False, True, True, True] and df["correct"].dtype == bool
    assert df["finished"].tolist() == [False, True, True, True]
    assert df["temperature"].tolist() == [0.6, 1.0, 0.6, 0.6] and df["top_p"].tolist() == [0.95, 1.0, 0.95, 0.95]
    assert df["prompt_mode"].tolist() == ["few-shot", "zero-shot", "few-shot", "few-shot"]
    assert df["checkpoint_id"].unique().tolist() == [CKPT] and df["seed"].tolist() == [0] * 4


def test_bad_rows_name_the_field(tmp_path):
    s = SampleStore(tmp_path)
    with pytest.raises(DataError, match="unknown field.*'colour'"):
        s.add([row("a", 0, colour="red")])
    with pytest.raises(DataError, match="'tokens' must be an integer"):
        s.add([row("a", 0, tokens=3.5)])
    with pytest.raises(DataError, match="prompt_mode"):
        s.add([row("a", 0, prompt_mode="8-shot")])
    bad = row("a", 0)
    del bad["correct"]
    with pytest.raises(DataError, match="lacks field.*correct"):
        s.add([bad])
    assert not s._dir(TASK, CKPT, "test").exists()  # nothing written


def test_many_small_adds_are_compacted(tmp_path):
    s = SampleStore(tmp_path, max_parts=3)
    for p in range(10):
        s.add([row(f"p{p:02d}", i, correct=i < p) for i in range(4)])
        assert len(parts(s)) <= 4
    assert not [f for f in os.listdir(s._dir(TASK, CKPT, "test")) if f.startswith(".tmp")]
    expected = [min(p, 4) for p in range(10)]
    assert s.counts(TASK, CKPT, "test", 4, 0)[1].tolist() == expected
    fresh = SampleStore(tmp_path)
    assert fresh.counts(TASK, CKPT, "test", 4, 0)[1].tolist() == expected
    fresh.compact(TASK, CKPT, "test")
    assert len(parts(fresh)) == 1 and len(fresh.load(TASK, CKPT, "test")) == 40
    assert s.add([row("p00", 0)]) == 0  # still known after another instance compacted


def test_correct_sets_feed_distinct_correct(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0, completion="x"), row("a", 1, completion="x"), row("a", 2, completion="y"),
           row("b", 0, correct=False), row("b", 1, correct=False), row("b", 2, completion="z")])
    pids, sets = s.correct_sets(TASK, CKPT, "test", n=2, seed=0)
    assert pids == ["a", "b"] and sets == [["x", "x"], []]
    assert distinct_correct(s.correct_sets(TASK, CKPT, "test", n=3, seed=0)[1]) == pytest.approx((2 + 1) / 2)


def test_missing_refuses_samples_drawn_with_another_budget_shots_or_backend(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0, max_new_tokens=64, shots=2, backend="torch")])
    same = dict(max_new_tokens=64, shots=2, backend="torch")
    assert s.missing(TASK, CKPT, "test", ["a"], 2, 0, 0.6, 0.95, "few-shot", **same) == [("a", 1)]
    for field, other in (("max_new_tokens", 128), ("shots", 4), ("backend", "vllm")):
        with pytest.raises(DataError, match=f"stored samples use {field}="):
            s.missing(TASK, CKPT, "test", ["a"], 2, 0, 0.6, 0.95, "few-shot", **{**same, field: other})
    s.add([row("b", 0)])  # a row that records no budget is compared on the other fields only
    assert s.missing(TASK, CKPT, "test", ["b"], 1, 0, 0.6, 0.95, "few-shot", max_new_tokens=512) == []
    with pytest.raises(TypeError, match="unknown protocol field"):
        s.missing(TASK, CKPT, "test", ["b"], 1, 0, top_k=5)


def test_bf16_samples_never_count_as_fp32_ones_and_unrecorded_rows_are_fp32(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0), row("b", 0, dtype="bf16")])  # "a" records no dtype: it was drawn in fp32
    assert s.missing(TASK, CKPT, "test", ["a"], 2, 0, dtype="fp32") == [("a", 1)]
    with pytest.raises(DataError, match="stored samples use dtype=fp32, not bf16"):
        s.missing(TASK, CKPT, "test", ["a"], 2, 0, dtype="bf16")
    with pytest.raises(DataError, match="stored samples use dtype=bf16, not fp32"):
        s.missing(TASK, CKPT, "test", ["b"], 2, 0, dtype="fp32")
    assert s.load(TASK, CKPT, "test")["dtype"].fillna("unrecorded").tolist() == ["unrecorded", "bf16"]


def test_a_part_from_before_the_dtype_column_reads_as_fp32(tmp_path):
    s = SampleStore(tmp_path)
    s.add([row("a", 0)])
    (part,) = parts(s)
    path = s._dir(TASK, CKPT, "test") / part
    pq.write_table(pq.read_table(path).drop(["dtype"]), path)  # as a store written before bf16 sampling
    s = SampleStore(tmp_path)
    assert s.missing(TASK, CKPT, "test", ["a"], 1, 0, dtype="fp32") == []
    with pytest.raises(DataError, match="dtype=fp32, not bf16"):
        s.missing(TASK, CKPT, "test", ["a"], 1, 0, dtype="bf16")


def test_samples_of_another_task_are_never_reused(tmp_path):
    """The key carries the task id: the same checkpoint, split and problem ids under another task (another
    dataset file, world or scoring) share nothing."""
    s = SampleStore(tmp_path)
    s.add([row("a", i) for i in range(4)])
    other = "gsm8k-fedcba9876543210"
    assert s.missing(other, CKPT, "test", ["a"], 4, seed=0) == [("a", i) for i in range(4)]
    assert s.load(other, CKPT, "test").empty
    assert s.counts(TASK, CKPT, "test", 4, 0)[1].tolist() == [4]
    assert json.loads((tmp_path / "STORE.json").read_text()) == {"schema": 2}


def test_a_store_from_before_task_keys_is_refused_with_how_to_remove_it(tmp_path):
    old = tmp_path / "samples"
    (old / "ckpt-abc" / "test-123").mkdir(parents=True)  # schema 1: <root>/<checkpoint>/<split>/part-*.parquet
    with pytest.raises(DataError, match=r"written before samples recorded their task.*rm -r .*samples"):
        SampleStore(old)
    (old / "STORE.json").write_text('{"schema": 7}')
    with pytest.raises(DataError, match="schema 7, not 2"):
        SampleStore(old)
    assert SampleStore(tmp_path / "fresh").load(TASK, CKPT, "test").empty  # a new store needs no marker to read
