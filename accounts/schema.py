"""How the OpenAPI schema describes our authentication classes (drf-spectacular
extensions, registered when ragsite.api.schema imports this module).

Kept apart from accounts/authentication.py: DRF imports that module while
rest_framework.views loads, and drf-spectacular's modules import views themselves.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


class TokenBasicScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.TokenEndpointBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}
