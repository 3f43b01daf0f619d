"""Entry points of the forecast roles: `python -m serving forecast` and `forecast-job`.

`forecast` serves the read endpoint (serving.forecast_api) under uvicorn. `forecast-job`
runs the forecast job once (a CronJob's container) and exits: 0 when it wrote its
forecasts, 69 (EX_UNAVAILABLE) when Redis is down, else the start-up codes of
`python -m serving` (65 refused version, 66 no version or no observations, 75 MLflow
unreachable, 78 configuration), with one `error:` line naming the cause.
"""

from __future__ import annotations

import sys

from castml.errors import CastmlError
from serving.forecast_cache import CacheUnavailableError
from serving.forecast_job import ForecastJob, exit_code, failure
from serving.settings import ForecastSettings


def serve_forecast(settings: ForecastSettings, port: int | None = None) -> None:
    import uvicorn

    from serving.forecast_api import forecast_app

    app, _ = forecast_app(settings)
    uvicorn.run(
        app,
        host=settings.forecast_host,
        port=port or settings.forecast_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def run_forecast_job(settings: ForecastSettings) -> None:
    """One run; exits non-zero, with one `error:` line, when it cannot write its forecasts."""
    from serving.startup_errors import classify, one_line

    try:
        ForecastJob(settings).run()
    except CacheUnavailableError as exc:
        fix = "start Redis, or correct CASTML_REDIS_URL and CASTML_REDIS_PASSWORD"
        print(f"error: {one_line(str(exc))}; fix: {fix}", file=sys.stderr, flush=True)
        sys.exit(exit_code(exc))
    except CastmlError as exc:  # anything else (a bug) is run_or_exit's: code 1
        code, message = classify(exc)
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(code if failure(exc) == "error" else exit_code(exc))
