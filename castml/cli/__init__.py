"""The `castml` command: one face over pipelines, serving and monitoring."""
