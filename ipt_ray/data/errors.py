"""The one error a malformed data file raises, naming the file, line and field."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data file is malformed; the message says where (file, line, field).

    Subclasses ``ValueError`` so callers that only know "bad input" still work.
    """

    def __init__(
        self,
        file: str,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        member: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.member = member
        where = file
        if member is not None:
            where += f" member {member}"
        if line is not None:
            where += f" line {line}"
        super().__init__(f"{where}: {message}")
