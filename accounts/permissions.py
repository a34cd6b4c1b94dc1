from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class ReadAnyWriteAuthenticated(permissions.BasePermission):
    """Anyone may read (querysets limit anonymous callers to public collections);
    writing needs a signed-in user or a token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated)
