"""Where the sealed split's record lies and which world it belongs to (rlearly.data.sealed makes it; the math world
reads it back). Apart from rlearly.data.sealed so that the math world can read a record without importing what
makes one."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rlearly.files import REPO

STREAM = 4  # the split's random stream in the math world (train 0, test 1, hard 2, dev 3)
DEV_HARD_STREAM = 5  # dev_hard's (plus 100 x the operation count: one stream per level)
HARD_STREAM = 6  # sealed_hard's
FAMILY_FIELDS = ("seed", "min_ops", "max_ops", "max_value", "min_people", "max_people", "n_test")
RECORDS = REPO / "studies" / "sealed"
LEVELS = REPO / "studies" / "hard_level"  # the difficulty chosen for sealed_hard on dev_hard, per world family


def family(world) -> str:
    """The world fields that decide which problems a split holds, as a short key."""
    blob = json.dumps({f: getattr(world, f) for f in FAMILY_FIELDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def record_path(world, records: Path | None = None) -> Path:
    return Path(records or RECORDS) / f"{family(world)}.json"


def keys_digest(keys) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()
