"""Error types whose message is meant for people: the CLI prints it as one line and exits non-zero."""
from __future__ import annotations

import os


class RlearlyError(Exception):
    """Base class: bad input or state that the user can fix. The message names the problem."""


class ConfigError(RlearlyError):
    """Unknown config key, wrong type or impossible value."""


class CheckpointError(RlearlyError):
    """Missing, incomplete, corrupt or incompatible checkpoint."""


class DataError(RlearlyError):
    """Malformed dataset row, missing field, unknown corpus."""


class StorageError(RlearlyError, OSError):
    """Writing a result failed (disk full, no permission); what was finished before is left as it was.
    Also an OSError (with the original errno), so code that catches those still does."""

    @classmethod
    def from_os(cls, path, err: OSError) -> "StorageError":
        """'cannot write PATH: no space left on device (...)' from the OSError of a failed write."""
        reason = os.strerror(err.errno).lower() if err.errno else (str(err) or type(err).__name__)
        e = cls(f"cannot write {path}: {reason} (earlier results are intact; fix this and run the same "
                "command again)")
        e.errno, e.path = err.errno, str(path)
        return e
