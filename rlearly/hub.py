"""The Hugging Face hub, reachable or not. A hub id on a machine that cannot reach the hub fails in under two
seconds, naming the way out, instead of after `datasets`' retries (about 30 s). With HF_HUB_OFFLINE=1 (or
HF_DATASETS_OFFLINE=1) nothing is checked: `datasets` then reads its local cache."""
from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

from rlearly.errors import DataError

TIMEOUT_S = 1.5


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def unreachable(timeout: float = TIMEOUT_S) -> str:
    """Why the hub endpoint (HF_ENDPOINT, default huggingface.co) cannot be reached, or "" when it can. Name
    resolution and the connection together take at most `timeout` seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    why = [f"no answer from {host} in {timeout:g} s"]

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            why[0] = ""
        except OSError as e:
            why[0] = f"{host}: {e.strerror or type(e).__name__}"

    t = threading.Thread(target=connect, daemon=True)  # a hanging DNS lookup cannot hold us past the timeout
    t.start()
    t.join(timeout)
    return why[0]


def require(what: str) -> None:
    """Fail at once, naming `what` (e.g. "dataset 'openai/gsm8k'"), when the hub cannot be reached."""
    if offline():
        return
    why = unreachable()
    if why:
        raise DataError(f"{what} is a hub id, and the hub cannot be reached ({why}); pass a local "
                        ".jsonl/.parquet file, or set HF_HUB_OFFLINE=1 to read the datasets cache")
