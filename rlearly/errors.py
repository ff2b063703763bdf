"""Error types whose message is meant for people: the CLI prints it as one line and exits non-zero."""


class RlearlyError(Exception):
    """Base class: bad input or state that the user can fix. The message names the problem."""


class ConfigError(RlearlyError):
    """Unknown config key, wrong type or impossible value."""


class CheckpointError(RlearlyError):
    """Missing, incomplete, corrupt or incompatible checkpoint."""


class DataError(RlearlyError):
    """Malformed dataset row, missing field, unknown corpus."""
