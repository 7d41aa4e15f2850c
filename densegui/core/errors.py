"""Exceptions that carry a one-line, user-facing message, and the one way to turn any
exception into such a line.

Everything the CLI and the GUI show to a user as "what went wrong" is a
:class:`DenseguiError`. Its ``str()`` is a single sentence; callers print it
as is (CLI: on stderr with exit code 2; GUI: in a message label).
"""

from __future__ import annotations


class DenseguiError(Exception):
    """Base class for errors whose message is meant for the user."""


class ConfigError(DenseguiError, ValueError):
    """A DenseNet configuration that cannot be built or run."""


MAX_MESSAGE = 200


def first_line(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line of ``exc``'s text, at most ``limit`` characters ('' if none)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a host or device allocation failure (MemoryError, CUDA/MPS/CPU allocator errors)."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "cannot allocate memory" in text
                                              or "failed to allocate" in text)


def user_message(exc: BaseException, context: str = "") -> str:
    """One line for the user: a DenseguiError's own text; otherwise ``context: Type: first line``.

    Out-of-memory errors say so plainly, whatever library raised them."""
    if isinstance(exc, DenseguiError):
        return first_line(exc, limit=10_000) or type(exc).__name__
    prefix = f"{context}: " if context else ""
    if is_out_of_memory(exc):
        return f"{prefix}out of memory."
    text = first_line(exc)
    return f"{prefix}{type(exc).__name__}: {text}" if text else f"{prefix}{type(exc).__name__}"
