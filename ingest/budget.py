"""The time one request may spend storing its events, and retries that stay inside it.

API Gateway and the ingest Lambda give up after 10 s; a request that is still waiting on S3 or
Firehose then dies without an answer. So every write runs against a ``Deadline``: each attempt
gets connect/read timeouts that fit in the time left, botocore's own retries are off, and
``retry_within`` retries transient failures with backoff only while another attempt still fits.
When the time or the attempts run out the handler answers 503 with ``Retry-After``, which the
tracker retries with the same event ids."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ingest.settings import Settings

logger = logging.getLogger("ingest.budget")

CONNECT_TIMEOUT_SECONDS = 1.0
# per-attempt timeouts are whole quarter seconds (so a process makes at most a few clients)
TIMEOUT_STEP_SECONDS = 0.25
# kept per attempt for what is not network waiting (signing, a client of other timeouts)
ATTEMPT_OVERHEAD_SECONDS = 0.1
# the least time left worth another attempt: the shortest connect and read timeouts + overhead
MIN_ATTEMPT_SECONDS = 2 * TIMEOUT_STEP_SECONDS + ATTEMPT_OVERHEAD_SECONDS
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 1.0
RETRY_AFTER_SECONDS = 2

TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)


class StorageUnavailable(Exception):
    """Storing failed for a reason that may pass (throttling, 5xx, timeouts, records refused):
    answer 503 so the client sends the same events again."""


class BudgetExhausted(StorageUnavailable):
    """The request's time budget ran out before its events were stored."""


@dataclass(frozen=True)
class AttemptTimeouts:
    connect: float
    read: float


def _step_down(seconds: float) -> float:
    return max(TIMEOUT_STEP_SECONDS, math.floor(seconds / TIMEOUT_STEP_SECONDS) * TIMEOUT_STEP_SECONDS)


class Deadline:
    """A point in time (monotonic clock) by which a request's writes must be done."""

    def __init__(self, seconds: float) -> None:
        self.budget = max(seconds, 0.0)
        self.expires_at = time.monotonic() + self.budget

    @classmethod
    def for_request(cls, settings: Settings, context: Any = None) -> Deadline:
        """INGEST_TIME_BUDGET_SECONDS, and in Lambda no more than the invocation's remaining time
        minus INGEST_TIME_MARGIN_SECONDS (kept to log and answer)."""
        budget = settings.time_budget_seconds
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            budget = min(budget, remaining_ms() / 1000 - settings.time_margin_seconds)
        return cls(budget)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def attempt_timeouts(self, read_timeout: float) -> AttemptTimeouts:
        """Connect and read timeouts for one attempt that together fit in the time left."""
        left = self.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            raise BudgetExhausted(f"time budget of {self.budget:.2f}s spent")
        waiting = left - ATTEMPT_OVERHEAD_SECONDS
        connect = _step_down(min(CONNECT_TIMEOUT_SECONDS, waiting / 2))
        read = _step_down(min(read_timeout, waiting - connect))
        return AttemptTimeouts(connect=connect, read=read)


def is_transient(exc: BaseException) -> bool:
    """A failure worth another attempt: no connection, a timeout, throttling or a 5xx."""
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in TRANSIENT_ERROR_CODES or status == 429 or status >= 500
    return False


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter after the given (1-based) attempt."""
    base = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return base / 2 + random.uniform(0, base / 2)


def retry_within(
    deadline: Deadline,
    settings: Settings,
    attempt: Callable[[AttemptTimeouts], bool],
    what: str,
) -> int:
    """Call ``attempt(timeouts)`` until it returns True (all done), at most
    ``settings.max_attempts`` times and never past the deadline. ``attempt`` returns False when
    part of the work is left (records refused) and raises on failure; transient failures are
    retried, others raised as they are. Returns the number of attempts made.

    Raises BudgetExhausted when no further attempt fits in the time left and StorageUnavailable
    when the attempts are spent."""
    problem: BaseException | None = None
    for number in range(1, settings.max_attempts + 1):
        try:
            timeouts = deadline.attempt_timeouts(settings.attempt_timeout_seconds)
        except BudgetExhausted as exc:
            raise BudgetExhausted(f"{what}: {exc} after {number - 1} attempts") from problem
        try:
            if attempt(timeouts):
                return number
            problem = None
            reason = "part refused"
        except Exception as exc:
            if not is_transient(exc):
                raise
            problem = exc
            reason = type(exc).__name__
        if number == settings.max_attempts:
            break
        delay = backoff_seconds(number)
        if deadline.remaining() < delay + MIN_ATTEMPT_SECONDS:
            raise BudgetExhausted(
                f"{what}: time budget of {deadline.budget:.2f}s spent after {number} attempts"
            ) from problem
        logger.warning(
            "write attempt failed; retrying",
            extra={"what": what, "attempt": number, "reason": reason, "retry_in_s": round(delay, 3)},
        )
        time.sleep(delay)
    raise StorageUnavailable(f"{what}: still failing after {settings.max_attempts} attempts") from problem
