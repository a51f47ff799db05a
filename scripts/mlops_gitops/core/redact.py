"""Secrets never reach a message, log, record or pack.

A credential travels inside a URI (`https://user:token@mlflow.example.com`, a presigned
`?X-Amz-Signature=`) or in an environment variable that MLflow, boto3 or GitHub read. Every sink
the engine writes to passes its text through `redact`:

* the `mlops` process's stdout and stderr (so MLflow's, DVC's and our own lines alike) and the
  model server's and the collector's logs: `install()` wraps the streams once, at start;
* history records (`records.append_line`) and the evidence pack (`Pack.add`).

What is hidden: a URI's user information, a query parameter whose name says it is a secret,
and the value of every environment variable whose name does (as GitHub Actions masks its
secrets). The URI stays readable: `https://***@mlflow.example.com/`.
"""

from __future__ import annotations

import io
import os
import re
import sys
from typing import Any, TextIO

MASK = "***"
# scheme://userinfo@ — the userinfo is everything up to the @ that ends the authority.
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,20}://)[^/\s@?#'\"<>]+@")
_SECRET_WORDS = r"(?:token|password|passwd|pwd|secret|signature|sig|credential|api[_-]?key|apikey|auth)"
_QUERY = re.compile(rf"(?i)([?&;][a-z0-9_.-]*{_SECRET_WORDS}[a-z0-9_.-]*=)[^&\s'\"<>#]+")
_SECRET_ENV = re.compile(rf"(?i)(^|_){_SECRET_WORDS}(_|$)|_KEY$|^AWS_SECRET|_PASS$")
_SHORTEST = 6  # shorter values (true, 0, yes) would mask ordinary words


def secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (as GitHub masks them)."""
    return bool(_SECRET_ENV.search(name))


def _env_secrets() -> list[str]:
    values = {
        value
        for key, value in os.environ.items()
        if _SECRET_ENV.search(key) and len(value) >= _SHORTEST and not value.startswith(("/", "."))
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with credentials masked: URI user information, secret query parameters, and the
    values of secret environment variables."""
    if not text:
        return text
    for value in _env_secrets():
        if value in text:
            text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    return _QUERY.sub(lambda m: m.group(1) + MASK, text)


def redact_data(data: Any) -> Any:
    """Every string in a JSON-like document, redacted (keys too)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


class RedactingStream(io.TextIOBase):
    """A text stream that redacts each line before it reaches the one it wraps. Text is held
    until its line ends (a secret split across two writes is still one line), and flushed."""

    def __init__(self, inner: TextIO):
        self._inner = inner
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            done, self._pending = self._pending.rsplit("\n", 1)
            self._inner.write(redact(done) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._inner.write(redact(self._pending))
            self._pending = ""
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    def writable(self) -> bool:
        return True


def install() -> None:
    """Wrap this process's stdout and stderr (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


def redact_bytes(data: bytes) -> bytes:
    """A UTF-8 text file's bytes, redacted (bytes that are not UTF-8 text are left as they are)."""
    try:
        return redact(data.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return data
