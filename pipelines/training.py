"""The training pipeline: validate -> split -> train -> evaluate -> register.

No `from __future__ import annotations`: KFP reads the real annotation objects.
"""

from typing import cast

from kfp import dsl

from pipelines import components

PIPELINE_NAME = "castml-training"


@dsl.pipeline(  # type: ignore[untyped-decorator]
    name=PIPELINE_NAME, description="Train, gate and register a castml project's model."
)
def training_pipeline(
    project: str = "diecast",
    mlflow_uri: str = "http://mlflow.castml.svc.cluster.local:5000",
    retrain_reason: str = "manual",
    profile: str = "",
    params_override: str = "",
    data_path: str = "",
    mlflow_run_id: str = "",
) -> int:
    validated = components.validate(project=project, data_path=data_path, mlflow_uri=mlflow_uri)
    parts = components.split(
        project=project, dataset=validated.outputs["dataset"], mlflow_uri=mlflow_uri
    )
    trained = components.train(
        project=project,
        profile=profile,
        params_override=params_override,
        train=parts.outputs["train"],
        validation=parts.outputs["validation"],
        mlflow_uri=mlflow_uri,
        mlflow_run_id=mlflow_run_id,
    )
    evaluated = components.evaluate(
        project=project,
        mlflow_uri=mlflow_uri,
        data_hash=validated.outputs["data_hash"],
        model=trained.outputs["model"],
        baseline=trained.outputs["baseline"],
        test=parts.outputs["test"],
    )
    registered = components.register(
        project=project,
        mlflow_uri=mlflow_uri,
        data_hash=validated.outputs["data_hash"],
        data_tags=validated.outputs["data_tags"],
        retrain_reason=retrain_reason,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        profile=profile,
        params_override=params_override,
        model=trained.outputs["model"],
        train=parts.outputs["train"],
        evaluation=evaluated.outputs["evaluation"],
        report=evaluated.outputs["report"],
        mlflow_run_id=mlflow_run_id,
    )
    return cast(int, registered.output)  # a placeholder at compile time
