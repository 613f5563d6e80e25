"""The one exception type for mistakes a user can cause (bad path, bad budget, unknown unit, ...).

The CLI prints its message as one line and exits with code 2; library callers can catch it.
"""


class DiffpruneError(Exception):
    """A user-facing error whose message says what to do."""
