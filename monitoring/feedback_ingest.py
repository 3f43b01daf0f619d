"""`POST /v1/feedback` bodies -> Feedback records, validated before the collector acks.

A body is one `{request_id, label, observed_at?, project?}` object or a non-empty list
of them. Everything the Parquet writer needs is checked here (issue 10 §1, §3, §8):
the project is one the collector serves, the label is a finite number, `observed_at`
is an ISO-8601 time or epoch seconds that a millisecond timestamp can hold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from castml.errors import CastmlError
from castml.protocol.payload_record import MAX_EPOCH_S, Feedback
from castml.web.errors import BadRequestError
from monitoring.event_ingest import FeaturesOf, known_features

MAX_REQUEST_ID = 512


class BadFeedbackError(CastmlError):
    """A feedback whose fields are wrong: not {request_id, label, observed_at} as documented."""

    status_code = 422


class EmptyFeedbackError(BadRequestError):
    """A feedback body that is an empty list: nothing to do is the sender's mistake."""


def observed_epoch(value: Any) -> float | None:
    """Epoch seconds of `observed_at`, inside what a Parquet millisecond timestamp holds."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        epoch = float(value)
    elif isinstance(value, str):
        try:
            epoch = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise BadFeedbackError(f"observed_at is not ISO-8601: {value[:64]!r}") from None
    else:
        raise BadFeedbackError("observed_at must be an ISO-8601 string or epoch seconds")
    if not 0.0 <= epoch <= MAX_EPOCH_S:  # also refuses NaN
        raise BadFeedbackError(
            f"observed_at {value!r} is out of range: epoch seconds from 0 to {MAX_EPOCH_S:.0f} "
            "(a millisecond value is 1000 times too large)"
        )
    return epoch


def feedback_record(
    item: Any,
    knows_request: Callable[[str], bool],
    default_project: str,
    features_of: FeaturesOf,
) -> Feedback:
    if not isinstance(item, dict):
        raise BadFeedbackError("each feedback must be an object {request_id, label, observed_at}")
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_REQUEST_ID:
        raise BadFeedbackError(
            f"feedback needs a non-empty string 'request_id' (at most {MAX_REQUEST_ID})"
        )
    label = item.get("label")
    if isinstance(label, bool):
        label = int(label)
    if not isinstance(label, int | float):
        raise BadFeedbackError("feedback needs a numeric 'label'")
    try:
        value = float(label)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise BadFeedbackError("feedback 'label' must be a finite number")
    observed = observed_epoch(item.get("observed_at"))
    project = item.get("project") or default_project
    known_features(project, features_of)
    # The key keeps the label as sent (1, not 1.0): the keys already in a WAL read so.
    key = f"feedback:{request_id}:{label}:{observed}"
    return Feedback(
        request_id, project, value, observed, time.time(), knows_request(request_id), key
    )


def feedback_records(
    payload: Any,
    knows_request: Callable[[str], bool],
    default_project: str,
    features_of: FeaturesOf,
) -> list[Feedback]:
    """Every record of a body, or the first problem: a body is taken whole or not at all."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise EmptyFeedbackError("the body is an empty list: send at least one feedback object")
    return [feedback_record(i, knows_request, default_project, features_of) for i in items]
