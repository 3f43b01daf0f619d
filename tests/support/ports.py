"""The one `free_port` the tests use: the CLI's own (castml.cli.local_processes)."""

from __future__ import annotations

from castml.cli.local_processes import free_port

__all__ = ["free_port"]
