"""Browsers ask every page's site for /favicon.ico; it must not be a 404."""

from __future__ import annotations

from django.test import Client


def test_favicon_is_served_at_the_site_root(db: None) -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert body[:4] == b"\x00\x00\x01\x00"  # the ICO header
    assert response["Content-Type"] in {"image/x-icon", "image/vnd.microsoft.icon"}
