"""Errors a user can meet: each carries a stable slug, an HTTP status and a message that
says what to do. The CLI prints them without a traceback; the REST API returns them as JSON.
"""

from __future__ import annotations


class CCServerError(Exception):
    """Base of every user-facing error.

    `slug` is stable (documented, tested, safe to match on); `status` is the HTTP status the
    REST API answers with; `exit_code` is what the CLI exits with.
    """

    slug: str = "error"
    status: int = 400
    exit_code: int = 2

    def __init__(self, message: str, *, slug: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if slug is not None:
            self.slug = slug
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.slug}: {self.message}"


class ConfigError(CCServerError):
    """The configuration (file or environment) is invalid."""

    slug = "config-invalid"


class StackError(CCServerError):
    """A part of the runtime stack could not be started, stopped or reached."""

    slug = "stack-failed"
    status = 503
    exit_code = 1


class InputError(CCServerError):
    """A command-line or API argument is invalid."""

    slug = "input-invalid"
