"""What a resolver's caller selected below it, to fetch only (and all of) that at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


def _names(selections: Iterable[Selection]) -> Iterable[str]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection.name
        elif isinstance(selection, FragmentSpread | InlineFragment):
            yield from _names(selection.selections)


def selects(info: Any, field_name: str) -> bool:
    """Whether ``field_name`` is selected right below the resolver's field (fragments
    included; a field left out by @skip/@include may still count: it is then fetched
    for nothing, never missed)."""
    return any(
        name == field_name for field in info.selected_fields for name in _names(field.selections)
    )
