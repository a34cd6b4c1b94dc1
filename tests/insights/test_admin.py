"""The query log in the admin: staff see rows whose collections they may all read, and
another user's query text only as superusers."""

from __future__ import annotations

from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from documents.models import CollectionGrant
from insights.models import QueryLog
from tests.factories import UserFactory


def test_staff_see_rows_of_collections_they_read_and_only_their_own_text(
    user_client: APIClient, user: Any, anon_client: APIClient, corpus: dict[str, Any]
) -> None:
    mine = user_client.post("/api/v1/search/", {"query": "volcano secret"})["X-Query-Log-Id"]
    public = anon_client.post("/api/v1/search/", {"query": "ocean salt"})["X-Query-Log-Id"]
    staff: Any = UserFactory.create(is_staff=True)
    admin = Client()
    admin.force_login(staff)
    page = admin.get("/admin/insights/querylog/").content.decode()
    # The user's search covered their private collection: not for this staff member.
    assert "ocean salt" in page and "volcano secret" not in page
    assert admin.get(f"/admin/insights/querylog/{mine}/change/").status_code == 302
    CollectionGrant.objects.create(
        collection=corpus["private"], user=staff, permission=CollectionGrant.Permission.READ
    )
    page = admin.get("/admin/insights/querylog/").content.decode()
    assert "(hidden: another user&#x27;s search)" in page and "volcano secret" not in page
    detail = admin.get(f"/admin/insights/querylog/{mine}/change/").content.decode()
    assert "volcano secret" not in detail and "/admin/documents/document/" in detail
    assert "ocean salt" in admin.get(f"/admin/insights/querylog/{public}/change/").content.decode()
    # No searching by text either: it would reveal hidden queries one guess at a time.
    assert 'id="searchbar"' not in page
    superuser = Client()
    root: Any = UserFactory.create(is_staff=True, is_superuser=True)
    superuser.force_login(root)
    page = superuser.get("/admin/insights/querylog/?q=secret").content.decode()
    assert "volcano secret" in page and QueryLog.objects.count() == 2
