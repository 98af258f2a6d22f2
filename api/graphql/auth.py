from __future__ import annotations

from api.graphql.context import Info
from core.identity.viewer import Viewer


def viewer_of(info: Info) -> Viewer:
    """The authenticated viewer; only call behind ``IsAuthenticated``."""
    viewer = info.context.viewer
    if viewer is None:  # pragma: no cover - IsAuthenticated runs first
        raise PermissionError("unauthenticated")
    return viewer
