"""The one error the local stack raises: a message a person can act on."""

from __future__ import annotations

__all__ = ["StackError"]


class StackError(RuntimeError):
    """A server or service could not be installed, started, reached or stopped.

    The message says what failed and, for a process, ends with the tail of its log.
    """
