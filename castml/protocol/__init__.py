"""The wire contracts, once: v2 tensors (`v2_tensors`), CloudEvents (`cloudevents`),
MLflow names (`mlflow_names`), and what the other modules here add (the transformer's
public answer, the payload-log record). Serving, monitoring and the faces all import
these; none of them defines a contract of its own (DESIGN.md §3-4)."""
