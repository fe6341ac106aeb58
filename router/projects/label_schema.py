"""A project's label schema: categorical classes or ordered ordinal levels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from router.errors import InvalidInput

__all__ = ["LabelSchema"]

_MAX_CLASSES = 1000


@dataclass(frozen=True, slots=True)
class LabelSchema:
    kind: Literal["categorical", "ordinal"]
    labels: tuple[str, ...]
    """Classes, or levels in order; index k is class k of every probability vector."""

    @property
    def k(self) -> int:
        return len(self.labels)

    def index_of(self, label: str) -> int | None:
        try:
            return self.labels.index(label)
        except ValueError:
            return None

    def as_dict(self) -> dict[str, Any]:
        key = "classes" if self.kind == "categorical" else "levels"
        return {"kind": self.kind, key: list(self.labels)}

    @classmethod
    def parse(cls, data: Any) -> LabelSchema:
        """Validate the request form; every problem is reported at once."""
        problems: list[dict[str, str]] = []

        def bad(field: str, message: str) -> None:
            problems.append({"field": f"label_schema{field}", "message": message})

        if not isinstance(data, dict):
            bad("", 'must be an object like {"kind": "categorical", "classes": [...]}')
            raise InvalidInput("invalid label_schema", extra=problems)
        kind = data.get("kind")
        key = (
            {"categorical": "classes", "ordinal": "levels"}.get(kind)
            if isinstance(kind, str)
            else None
        )
        if key is None:
            bad(".kind", "must be 'categorical' or 'ordinal'")
            raise InvalidInput("invalid label_schema", extra=problems)
        unknown = sorted(set(data) - {"kind", key})
        for name in unknown:
            bad(f".{name}", f"unknown field for a {kind} schema (expected 'kind' and '{key}')")
        labels = data.get(key)
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            bad(f".{key}", "must be a list of non-empty strings")
        elif len(labels) < 2:
            bad(f".{key}", f"needs at least 2 entries, got {len(labels)}")
        elif len(set(labels)) != len(labels):
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            bad(f".{key}", f"entries must be distinct; repeated: {', '.join(dupes)}")
        elif len(labels) > _MAX_CLASSES:
            bad(f".{key}", f"at most {_MAX_CLASSES} entries")
        if problems:
            raise InvalidInput("invalid label_schema", extra=problems)
        assert isinstance(labels, list)
        return cls(kind=kind, labels=tuple(labels))  # type: ignore[arg-type]
