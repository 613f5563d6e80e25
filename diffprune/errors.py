"""The one exception type for mistakes a user can cause (bad path, bad budget, unknown unit, ...).

The CLI prints its message as one line and exits with code 2; library callers can catch it.
"""


class DiffpruneError(Exception):
    """A user-facing error whose message says what to do."""


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (or its type when it has none), for one-line errors that
    wrap it: `DiffpruneError(f"could not load X ({first_line(error)}); do Y")`."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
