"""What an operator sees: logs, metrics, readiness, and the audit log."""
