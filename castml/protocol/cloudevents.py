"""The KServe logger's CloudEvents: types, media type, extension attributes.

The logger (and castml's own `castml.cloudevent_sender` in the embedded mode) posts each
inference's request and response as two CloudEvents that share one `ce-id`, in binary
mode (attributes in `ce-*` headers) or structured mode (one JSON document).
"""

from __future__ import annotations

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
STRUCTURED_MEDIA = "application/cloudevents+json"
SPEC_VERSION = "1.0"
# KServe's extension attributes, in the order the Parquet log keeps them.
EXTENSIONS = ("inferenceservicename", "namespace", "endpoint", "component")
