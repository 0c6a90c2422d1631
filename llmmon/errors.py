"""Errors a user can fix: one line naming the problem, exit 2 (CLI) or a failed, non-retried task
(Airflow).

:class:`UserError` is raised for problems the user can fix. :func:`user_error` translates the
exceptions third-party libraries raise for the same kind of problem (an unreachable S3 endpoint, a
missing bucket, missing credentials, an unreachable or unknown database, a bad config value, a bad
date) into one; anything it does not recognise is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


class UserError(Exception):
    """A problem the user can fix; its message is one line naming it."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class BadDateError(UserError, ValueError):
    """A date, hour or period the user typed does not parse (also a ValueError, for callers that
    already catch that)."""


def one_line(text: str, limit: int = 400) -> str:
    """``text`` squeezed onto one line, at most ``limit`` characters."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _pydantic_line(exc: BaseException) -> str:
    errs = exc.errors()  # type: ignore[attr-defined]
    if not errs:
        return one_line(str(exc))
    e = errs[0]
    loc = ".".join(str(x) for x in e.get("loc", ()))
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    got = e.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f", got {got!r}"
    return f"{loc}: {e.get('msg')}{shown}{more}" if loc else f"{e.get('msg')}{more}"


def _botocore(exc: BaseException) -> str | None:
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return f"object store unreachable{f' at {url}' if url else ''}: check storage.url/storage.endpoint_url " \
               "and that the S3 service is up"
    if isinstance(exc, bx.ConnectionError):
        return f"object store connection failed: {one_line(exc, 200)}"
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return "no S3 credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or the " \
               "Airflow connection named in storage.aws_conn_id"
    if isinstance(exc, bx.NoRegionError):
        return "no AWS region: set storage.region or AWS_DEFAULT_REGION"
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        bucket = exc.response.get("Error", {}).get("BucketName", "")
        if code == "NoSuchBucket":
            return f"bucket {bucket or '(named in storage.url)'} does not exist: check storage.url"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return f"S3 rejected the credentials ({code}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return f"S3 access denied ({code}): the credentials may not read or write this bucket"
    return None


def _sqlalchemy(exc: BaseException) -> str | None:
    try:
        from sqlalchemy import exc as sx
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, sx.NoSuchModuleError):
        m = re.search(r"sqlalchemy\.dialects:(\S+)", str(exc))
        name = m.group(1) if m else "?"
        return f"unknown database dialect {name!r} in warehouse.url: use sqlite:///path or " \
               "postgresql+psycopg://user@host/db"
    if isinstance(exc, sx.ArgumentError) and "URL" in str(exc):
        return f"bad warehouse.url: {one_line(exc.args[0] if exc.args else exc, 200)}"
    if isinstance(exc, sx.OperationalError | sx.InterfaceError):
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        return f"warehouse unreachable or refused: {one_line(first, 240)} (check warehouse.url)"
    return None


def user_error(exc: BaseException) -> UserError | None:
    """``exc`` as a :class:`UserError` when it is a problem the user can fix, else None (a bug)."""
    if isinstance(exc, UserError):
        return exc
    # Walk the explicit cause chain (``raise ... from``): a ConfigError wraps pydantic's
    # ValidationError, a StorageError may wrap a botocore error.
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        line = _one(cur)
        if line is not None:
            return UserError(line)
        cur = cur.__cause__
    return None


def _one(exc: BaseException) -> str | None:
    mod = type(exc).__module__
    name = type(exc).__name__
    if name == "ValidationError" and mod.startswith("pydantic"):
        return f"invalid llmmon config: {_pydantic_line(exc)}"
    if name == "ConfigError" and mod.startswith("llmmon"):
        text = str(exc)
        if "\n" not in text.strip():
            return one_line(exc)  # already one line that names the section and key
        cause = exc.__cause__
        if cause is not None and type(cause).__name__ == "ValidationError":
            return f"invalid llmmon config: {_pydantic_line(cause)}"
        return one_line(exc)
    if name in ("StorageError", "UserError") and mod.startswith("llmmon"):
        # A StorageError caused by a transport problem says the transport problem.
        inner = exc.__cause__
        if inner is not None:
            line = _botocore(inner)
            if line is not None:
                return line
        return one_line(exc)
    if mod.startswith("botocore"):
        return _botocore(exc)
    if mod.startswith("sqlalchemy"):
        return _sqlalchemy(exc)
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return one_line(exc)  # a path the user gave (--out, --dest, --config)
    return None


@contextmanager
def fail_task_on_user_error() -> Iterator[None]:
    """For Airflow tasks: a user error fails the task at once (no retry) with its one line first in
    the log, as ``AirflowFailException``; anything else propagates unchanged (retried as usual)."""
    try:
        yield
    except Exception as exc:
        ue = user_error(exc)
        if ue is None:
            raise
        _fail(str(ue))


def _fail(line: str) -> NoReturn:
    import logging

    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover - Airflow 2
        from airflow.exceptions import AirflowFailException

    logging.getLogger("llmmon").error("llmmon: error: %s", line)
    raise AirflowFailException(f"llmmon: error: {line}") from None


__all__ = ["UserError", "BadDateError", "user_error", "one_line", "fail_task_on_user_error"]
