"""`--project` takes a project name or a path to a spec; MLflow knows the spec's `name`.

The registered model, its experiment and its aliases are named after the spec's `name`
(castml.registration), never after the path a user typed.
"""

from __future__ import annotations

from pathlib import Path

from castml.spec import load_spec

SPEC_SUFFIXES = frozenset({".yaml", ".yml"})


def registered_name(project: str) -> str:
    """The registered model's name for `project`: a spec path resolves to its `name`.

    A plain name is taken as is: it may be a model registered from a spec file that
    is not bundled here.
    """
    if Path(project).suffix in SPEC_SUFFIXES:
        return load_spec(project).name
    return project
