"""Admin access: a bearer token (``APP_ADMIN_TOKEN``) for the routes that see or end others'
connections. A connection's own routes need only its id, which is a capability."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..settings import Settings
from .errors import UnauthorizedError

_bearer = HTTPBearer(auto_error=False, description="APP_ADMIN_TOKEN, when it is set")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse with 401 unless the request bears the admin token (when one is configured)."""
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        return
    expected = settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if credentials is None or not secrets.compare_digest(given, expected):
        raise UnauthorizedError


Admin = Depends(require_admin)
