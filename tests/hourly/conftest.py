"""The alert tests' receivers (HTTP, SMTP, Alertmanager) for the hourly job's tests."""

from tests.alerts.conftest import alertmanager, receiver, smtp  # noqa: F401 - fixtures
