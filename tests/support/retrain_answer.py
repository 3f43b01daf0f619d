"""What `POST /v1/retrain` answers: `{"decisions": [{"outcome", "detail", ...}, ...]}`.

One reader for the e2e test (the chart's collector) and the loopback test of the same
endpoint, so the e2e test reads the shape the endpoint really has.
"""

from __future__ import annotations

from typing import Any


def outcomes(answer: dict[str, Any]) -> list[str]:
    """Each decision's outcome: started, skipped or failed."""
    return [decision["outcome"] for decision in answer["decisions"]]
