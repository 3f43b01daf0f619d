"""The Models tab's data, read-only: registered versions, aliases, gate verdicts, training-data
lineage and the MLflow UI link of each (promotion happens there, by moving @champion)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from castml import registry
from castml.protocol.mlflow_names import TAG_DATA_PREFIX


@dataclass(frozen=True)
class VersionView:
    version: int
    aliases: list[str]
    gate: str
    reason: str
    lineage: dict[str, str]
    created: str
    link: str

    @property
    def lineage_text(self) -> str:
        """`source=generator, rows=12000, ...`: the `castml.data.*` tags, shortened."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.lineage.items()))


def version_link(ui_base: str, project: str, version: int) -> str:
    """The version's page in the MLflow UI (the same link `castml model` prints)."""
    return f"{ui_base.rstrip('/')}/#/models/{project}/versions/{version}"


def registered_versions(tracking_uri: str, ui_base: str, project: str) -> list[VersionView]:
    """Newest first. Raises castml's MlflowUnavailableError when MLflow does not answer."""
    client = registry.client(tracking_uri, timeout_s=5.0)
    rows = registry.list_versions(client, project)
    tags = {
        int(v.version): dict(v.tags or {})
        for v in client.search_model_versions(f"name='{project}'")
    }
    views = []
    for row in sorted(rows, key=lambda r: -r.version):
        lineage = {
            key[len(TAG_DATA_PREFIX) :]: value
            for key, value in tags.get(row.version, {}).items()
            if key.startswith(TAG_DATA_PREFIX)
        }
        if row.data_hash:
            lineage.setdefault("hash", row.data_hash[:12])
        created = (
            datetime.fromtimestamp(row.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if row.created_ms
            else ""
        )
        views.append(
            VersionView(
                version=row.version,
                aliases=row.aliases,
                gate=row.gate,
                reason=row.reason,
                lineage=lineage,
                created=created,
                link=version_link(ui_base, project, row.version),
            )
        )
    return views
