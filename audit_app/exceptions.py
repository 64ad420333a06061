"""Audit domain errors."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit app's errors."""


class AppendOnlyError(AuditError):
    """Raised on any attempt to change or delete an audit row: the log is append-only."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"audit_logs is append-only: {operation} is not allowed")
        self.operation = operation
