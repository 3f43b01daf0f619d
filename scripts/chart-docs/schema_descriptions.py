"""Write the values.yaml `## @param` descriptions into the chart's hand-written schema.

The schema's types and constraints stay hand-written (strict: enums, patterns, minimums,
`additionalProperties: false`); only the `description` of each documented value is
generated. The readme generator's own `--schema` output is not a usable base: it drops
`[object]` values and every constraint.

Usage (see `make chart-docs`):
    node scripts/chart-docs/descriptions.js values.yaml > descriptions.json
    python scripts/chart-docs/schema_descriptions.py values.schema.json descriptions.json \
        --copy serving.defaults=projects.<name>

`--copy SOURCE=TARGET` also gives TARGET's keys SOURCE's descriptions where the values
file documents no TARGET key itself: each `projects.<name>` entry overrides
`serving.defaults`, so its keys mean the same. A path component in angle brackets stands
for any key of a map (the schema's `additionalProperties`).

Exits 1, naming the value, when a documented value has no node in the schema: the two
files have drifted apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


class SchemaDriftError(Exception):
    pass


def node_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema node a dotted values path validates; map keys go to additionalProperties."""
    node = schema
    for key in path.split("."):
        properties = node.get("properties", {})
        if key in properties and not key.startswith("<"):
            node = properties[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            raise SchemaDriftError(f"values.yaml documents `{path}`, the schema has no `{key}`")
    return node


def apply(
    schema: dict[str, Any], descriptions: dict[str, str], copies: list[tuple[str, str]]
) -> None:
    for source, target in copies:
        for path, text in descriptions.items():
            if path.startswith(source + "."):
                node_at(schema, target + path[len(source) :])["description"] = text
    for path, text in descriptions.items():
        node_at(schema, path)["description"] = text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("schema", type=Path)
    parser.add_argument("descriptions", type=Path, help="{values path: description} JSON")
    parser.add_argument("--copy", action="append", default=[], metavar="SOURCE=TARGET")
    args = parser.parse_args(argv)
    schema = json.loads(args.schema.read_text())
    descriptions = json.loads(args.descriptions.read_text())
    copies = [(source, target) for source, _, target in (c.partition("=") for c in args.copy)]
    try:
        apply(schema, descriptions, copies)
    except SchemaDriftError as exc:
        print(f"{args.schema}: {exc}", file=sys.stderr)
        return 1
    args.schema.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
