"""JSONText: JSON that travels as the text it is written in."""

from __future__ import annotations

import json
from typing import Any


class JSONText:
    """JSON text that travels as it is written, byte for byte: key order, number spellings
    (``1.10``, ``1e2``, ``12345678901234567890``) and whitespace are kept.

    Wherever the binding takes a value to send (request data, a container's answer, ``emit``),
    a ``JSONText`` is sent as its text instead of being written with ``json.dumps``; a container
    class with ``raw_json = True`` receives request data as a ``JSONText``. The text is not checked
    here: the library checks it once, when it is sent (``InvalidJSON`` if it does not parse).

    Not a ``str`` on purpose: ``json.dumps`` would write one nested in a dict or list as a JSON
    string; nested, a ``JSONText`` raises ``TypeError`` instead. Only a whole value is sent as is.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"JSONText takes a str, not {type(text).__name__}")
        self.text = text

    def value(self) -> Any:
        """The text parsed with ``json.loads`` (``ValueError`` if it is not JSON)."""
        return json.loads(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JSONText):
            return self.text == other.text
        return NotImplemented

    def __hash__(self) -> int:
        return hash((JSONText, self.text))
