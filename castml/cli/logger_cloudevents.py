"""Build the CloudEvents the KServe logger sends: used by the demo, tests and the bench.

The shapes follow DESIGN.md §4: v2 requests with one FP32 [N, F] tensor or one
tensor per feature, and v2 responses with probability / label / latent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from castml.protocol.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, STRUCTURED_MEDIA


def v2_request(
    values: np.ndarray, features: list[str], per_feature: bool = False
) -> dict[str, Any]:
    matrix = np.asarray(values, dtype=np.float32)
    if per_feature:
        inputs = [
            {
                "name": name,
                "shape": [len(matrix)],
                "datatype": "FP32",
                "data": matrix[:, i].tolist(),
            }
            for i, name in enumerate(features)
        ]
    else:
        inputs = [
            {
                "name": "input-0",
                "shape": list(matrix.shape),
                "datatype": "FP32",
                "data": matrix.ravel().tolist(),
            }
        ]
    return {"inputs": inputs}


def v2_response(
    probability: np.ndarray, project: str, version: str, request_id: str, latent_dim: int = 12
) -> dict[str, Any]:
    p = np.asarray(probability, dtype=np.float32)
    return {
        "model_name": project,
        "model_version": version,
        "id": request_id,
        "outputs": [
            {"name": "probability", "shape": [len(p)], "datatype": "FP32", "data": p.tolist()},
            {
                "name": "label",
                "shape": [len(p)],
                "datatype": "INT64",
                "data": (p >= 0.5).astype(int).tolist(),
            },
            {
                "name": "latent",
                "shape": [len(p), latent_dim],
                "datatype": "FP32",
                "data": np.zeros(len(p) * latent_dim, dtype=np.float32).tolist(),
            },
        ],
    }


def binary_event(
    kind: str,
    event_id: str,
    project: str,
    data: dict[str, Any],
    namespace: str = "default",
    component: str = "predictor",
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a binary-mode CloudEvent as KServe's logger sends it."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": f"http://localhost/{project}",
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-inferenceservicename": project,
        "ce-namespace": namespace,
        "ce-endpoint": "default",
        "ce-component": component,
        "content-type": "application/json",
    }
    return headers, orjson.dumps(data)


def structured_event(
    kind: str, event_id: str, project: str, data: dict[str, Any], namespace: str = "default"
) -> tuple[dict[str, str], bytes]:
    document = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"http://localhost/{project}",
        "type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "datacontenttype": "application/json",
        "inferenceservicename": project,
        "namespace": namespace,
        "endpoint": "default",
        "component": "predictor",
        "data": data,
    }
    return {"content-type": STRUCTURED_MEDIA}, orjson.dumps(document)
