"""A cached result's name is a promise (docs/STYLE.md habit 15): moving or renaming code never renames a node.

tests/data/frozen/ holds copies of studies/tiny.yaml, default.yaml and late.yaml as they were at 89f0fd4 (with
`runtime.dtype: fp32` written out, since the live specs and the dtype default may change on purpose), and
names.json what planning them gave then: every node's kind, key and path under the study root (a training node's
path holds its config hash), its dependencies, and an evaluation's protocol (evaluations have no hash of their
own; the protocol decides whether a stored result counts). The record may change only in a commit that says which
derivation changed and why; regenerate it with `python tests/test_names.py --write`.
"""
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "data" / "frozen"
SPECS = ("tiny", "default", "late")


def record(name: str) -> list[dict]:
    from rlearly.study import load_study, plan

    root = Path("/study-root")  # planning reads nothing under the root
    return [{"kind": n.kind, "key": n.key, "path": n.path.relative_to(root).as_posix(), "arm": n.arm,
             "pretrain_seed": n.pretrain_seed, "deps": [d.relative_to(root).as_posix() for d in n.deps],
             **({"protocol": n.protocol} if n.protocol else {})}
            for n in plan(load_study(HERE / f"{name}.yaml"), root)]


@pytest.mark.parametrize("name", SPECS)
def test_frozen_specs_plan_to_the_recorded_names(name):
    want = json.loads((HERE / "names.json").read_text())[name]
    got = record(name)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, f"node {w['key']!r} of the frozen {name} spec changed"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    (HERE / "names.json").write_text(json.dumps({s: record(s) for s in SPECS}, indent=1) + "\n")
