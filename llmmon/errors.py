"""Errors a user can fix, as opposed to bugs.

A :class:`UserError` (bad config key, bad date, unreachable store, missing manifest key ...) is
printed by the CLI as one line naming the problem, with exit code 2, and fails an Airflow task at
once, without retries. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; its message is one line that names it."""
