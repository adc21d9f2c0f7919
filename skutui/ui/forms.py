"""Reading a form: every field checked by the domain's checks, every problem kept for its field.

The console writes no rule of its own: it only says which field a message belongs to, so
the operator sees all that is wrong at once, each under the field to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from skutui.domain.errors import ValidationError

T = TypeVar("T")


class FormCheck:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def __call__(self, field_id: str, check: Callable[[], T]) -> T | None:
        """The checked value, or None after keeping the first message for ``field_id``."""
        try:
            return check()
        except ValidationError as error:
            self.errors.setdefault(field_id, error.message)
            return None

    @property
    def ok(self) -> bool:
        return not self.errors

