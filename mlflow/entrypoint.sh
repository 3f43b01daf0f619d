#!/bin/sh
# Start `mlflow server` from environment variables (the Helm chart sets them).
#   MLFLOW_BACKEND_STORE_URI      required: SQLAlchemy URL (postgresql://...); webhooks need SQL
#   MLFLOW_ARTIFACTS_DESTINATION  required: s3://bucket/prefix or a local folder (a volume)
#   MLFLOW_PORT                   default 5000
#   MLFLOW_WORKERS                default 2
#   MLFLOW_ALLOWED_HOSTS          optional: comma-separated Host headers the server accepts
# Artifacts are always proxied (--serve-artifacts), so clients need no storage credentials.
# Extra arguments are passed on to `mlflow server`.
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (the backend database URL)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix or a folder)}"
# Background jobs stay off in the server process: castml runs its work in KFP and CronJobs.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

case "$MLFLOW_ARTIFACTS_DESTINATION" in
  /*) mkdir -p "$MLFLOW_ARTIFACTS_DESTINATION" ;;
esac

set -- \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host 0.0.0.0 \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}" \
  "$@"
if [ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]; then
  set -- "$@" --allowed-hosts "$MLFLOW_ALLOWED_HOSTS"
fi

exec mlflow server "$@"
