"""Located validation problems: what loading a workflow or an inventory reports.

A leaf: imports nothing of Baton's, so every reader and builder can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Problem", "WorkflowError"]


@dataclass(frozen=True)
class Problem:
    """One located validation problem; ``str()`` is ``FILE:LINE:COL: message``."""

    file: str
    line: int | None
    col: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        if self.col is None:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class WorkflowError(Exception):
    """A workflow (or its inventory) could not be loaded; ``problems`` lists why."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))
