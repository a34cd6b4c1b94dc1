"""Fuzzing the REST API with schemathesis against its own OpenAPI schema (issue #7).

Every operation of the schema ``/api/v1/schema/`` serves becomes a test item, so endpoints
added later are fuzzed without touching this file. Each is called as the owner of a
collection holding two ready documents, with a real bearer token, through Django's WSGI
application in-process: schemathesis' coverage cases (boundary values, wrong types,
missing fields) and then 50 generated examples, valid and invalid, reproducible
(``derandomize``). About half the cases get the id or slug of a seeded object in place of
the generated one (path parameters, ``collection`` and ``user`` in bodies), so success
paths are reached too, not only 404s. Every example runs in a savepoint that is rolled
back, so a fuzzed DELETE cannot take the seeded data away from the examples after it.
Uploads are stored and stay pending: no worker runs, and an accepted (202) request only
has to have queued its task in the ORM broker, which is checked.

Checks on every response:

* no 5xx (``not_a_server_error``), except a 503/504 the operation documents;
* ``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``,
  ``response_headers_conformance``: status, Content-Type, body and headers as documented;
* ``ignored_auth``: operations that need credentials refuse a request without them or
  with invalid ones;
* ``unsupported_method``, ``allow_header_conformance``: methods an operation does not
  define answer 405 with a correct ``Allow`` header;
* ``missing_required_header``, ``use_after_free``, ``ensure_resource_availability``.

Checks excluded, and why:

* ``negative_data_rejection`` (a schema-invalid request must be refused): DRF reads forms
  and query strings leniently on purpose: an empty form value means "use the default",
  booleans accept "yes"/"1", an unparsable or negative ``offset`` reads as 0 (DRF's
  LimitOffsetPagination). Refusing those would break ordinary HTML-form clients.
* ``positive_data_acceptance`` (a schema-valid request must succeed): valid requests are
  rightly refused for reasons a schema cannot express: a slug already taken, a file that
  is not a supported document type, "send either a file or a text", an unknown collection.
* ``object_level_authorization``: needs a second identity configured in schemathesis;
  access between users is tested from both sides in tests/accounts/test_permissions.py.
* ``max_response_time``: timing on two shared cores is not a correctness property.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from django_q.models import OrmQ
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from accounts.services import token_create
from documents.models import Chunk, CollectionGrant, Document
from tests.factories import UserFactory

SCHEMA_PATH = "/api/v1/schema/"
# Where the on-commit callbacks that queue work are defined (not the file deletions).
QUEUEING_MODULES = {"documents.queue", "documents.tasks"}


def not_an_undocumented_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except a 503/504 the operation documents (a dependency such
    as the chat model being unavailable is an answer the API promises, not a crash)."""
    status = response.status_code
    if status in (503, 504) and str(status) in case.operation.responses.status_codes:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_an_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
]

DOCUMENTS = {
    "aspirin.md": (
        "# Aspirin\n\nAspirin lowers the risk of heart attacks in people with heart disease.\n\n"
        "## Dosage\n\nA low dose of 75 to 100 mg a day is usual for prevention."
    ),
    "volcano.txt": (
        "Volcanoes form where magma reaches the surface. Basalt lava flows far; "
        "rhyolite lava is thick and erupts explosively."
    ),
}


@dataclass(frozen=True)
class Seeded:
    """What the fuzzed user owns, and real values to put into generated requests."""

    token: str
    collection: str
    document_id: int
    # Path template prefix -> real values of its last parameter.
    path_values: dict[str, list[Any]]
    # Body field -> real values (a generated slug or username almost never exists).
    body_values: dict[str, list[Any]]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Every test item seeds its own users; PBKDF2 would spend most of the setup time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def in_test_transaction(db: None) -> Iterator[None]:
    """Serve the WSGI application inside the test's transaction.

    Like django.test.Client, stop the request signals from closing the connection: the
    test transaction (and the seeded data) lives on it.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(collection: Any, ingest: Any) -> Seeded:
    documents = ingest(collection, DOCUMENTS)
    assert [d.status for d in documents] == [Document.Status.READY] * len(DOCUMENTS)
    token, secret = token_create(user=collection.owner, name="fuzz")
    grant = CollectionGrant.objects.create(
        collection=collection, user=UserFactory.create(), permission="read"
    )
    chunk_ids = list(Chunk.objects.filter(document__in=documents).values_list("pk", flat=True))
    return Seeded(
        token=secret,
        collection=collection.slug,
        document_id=documents[0].pk,
        path_values={
            "/api/v1/documents/{id}": [d.pk for d in documents],
            "/api/v1/chunks/{id}": chunk_ids,
            "/api/v1/tokens/{id}": [token.pk],
            "/api/v1/collections/{slug}": [collection.slug],
            "/api/v1/collections/{slug}/grants/{grant_id}": [grant.pk],
        },
        body_values={
            "collection": [collection.slug],
            "user": [grant.user.get_username() if grant.user else ""],
        },
    )


def _openapi_document() -> dict[str, Any]:
    """The document ``/api/v1/schema/`` serves, built the way its view builds it.

    Built at collection time, so every operation becomes its own test item; schemathesis'
    lazy (fixture-loaded) schemas, which could fetch it over HTTP instead, do not run on
    pytest 9. test_fuzzed_schema_is_the_served_schema checks the two are the same.
    """
    generator = SpectacularAPIView.generator_class()
    document = generator.get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))


OPENAPI = _openapi_document()
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.app = WSGIHandler()  # requests (and the checks' probes) go to Django in-process


def test_fuzzed_schema_is_the_served_schema(db: None, client: Client) -> None:
    response = client.get(SCHEMA_PATH, {"format": "json"})
    assert response.status_code == 200
    assert response.json() == OPENAPI
    assert len(list(schema.get_all_operations())) >= 20


def _real_value(values: list[Any], generated: Any) -> Any | None:
    """A real value to use instead of ``generated`` for about half the cases, else None.

    Chosen from the generated value rather than drawn, so runs are reproducible and
    schemathesis keeps its coverage phase (it drops it for tests that draw more data).
    """
    digest = zlib.crc32(repr(generated).encode())
    return values[digest // 2 % len(values)] if digest % 2 == 0 else None


def _nested(value: Any, depth: int) -> Any:
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


def _make_hostile(case: Any) -> None:
    """Turn about a quarter of the cases into input classes schemathesis does not generate
    by itself, chosen (like _real_value) from the generated values, so runs reproduce:
    NUL in string path parameters (slugs); JSON nested around and past
    API_JSON_MAX_DEPTH; lone surrogates (``"\\ud800"`` on the wire) in JSON strings and
    keys. Forms and multipart bodies cannot carry either of the last two."""
    digest = zlib.crc32(repr((case.path_parameters, case.body, case.query)).encode())
    kind = digest % 8
    is_json = isinstance(case.body, dict) and case.body and "json" in (case.media_type or "")
    if kind == 1 and case.path_parameters:
        for name, value in case.path_parameters.items():
            if isinstance(value, str) and not name.endswith("id"):
                case.path_parameters[name] = value[: digest % 3] + NUL + value[digest % 3 :]
    elif kind == 2 and is_json:
        name = sorted(case.body)[digest // 8 % len(case.body)]
        case.body[name] = _nested(case.body[name], (5, 12, 40)[digest // 64 % 3])
    elif kind == 3 and is_json:
        hostile = {
            f"{k}\ud800" if digest // 8 % 4 == 0 else k: f"{v}\udfff" if isinstance(v, str) else v
            for k, v in case.body.items()
        }
        # Sent as the bytes json.dumps makes ("\\udfff" escapes): schemathesis' schema
        # validator cannot take a lone surrogate in a Python value.
        case.body = json.dumps(hostile).encode()


def _use_real_values(case: Any, seeded: Seeded) -> None:
    for prefix, values in seeded.path_values.items():
        name = prefix.rsplit("{", 1)[1].rstrip("}")
        if case.operation.path.startswith(prefix) and name in (case.path_parameters or {}):
            real = _real_value(values, case.path_parameters[name])
            if real is not None:
                case.path_parameters[name] = real
    if isinstance(case.body, dict):
        for name, values in seeded.body_values.items():
            if name in case.body:
                real = _real_value(values, case.body[name])
                if real is not None:
                    case.body[name] = real


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    # The seeded data is shared by the examples on purpose: each runs in a savepoint that
    # is rolled back, so every example sees it unchanged.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@schema.parametrize()
@pytest.mark.usefixtures("in_test_transaction")
def test_api_conforms_to_schema(
    case: Any, seeded: Seeded, django_capture_on_commit_callbacks: Any
) -> None:
    _use_real_values(case, seeded)
    _make_hostile(case)
    with transaction.atomic():
        try:
            queued = OrmQ.objects.count()
            with django_capture_on_commit_callbacks() as on_commit:
                response = case.call_and_validate(
                    headers={"Authorization": f"Bearer {seeded.token}"}, checks=CHECKS
                )
            # Run what would run on commit to queue work (inserts into the ORM broker,
            # rolled back with the rest); not the file deletions, which would outlive the
            # rollback. No worker runs: an accepted request only has to queue its task.
            for callback in on_commit:
                if callback.__module__ in QUEUEING_MODULES:
                    callback()
            if response.status_code == 202:
                assert OrmQ.objects.count() > queued, "accepted (202) but nothing queued"
        finally:
            transaction.set_rollback(True)


# --- What the fuzzing found, kept as plain regression tests ------------------------------

NUL = "\x00"


@pytest.fixture
def token_client(seeded: Seeded) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {seeded.token}")
    return client


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/documents/", {"collection": f"a{NUL}", "text": "hi"}, "collection"),
        (
            "post",
            "/api/v1/documents/",
            {"collection": "{slug}", "text": "hi", "metadata": {"k": NUL}},
            "metadata",
        ),
        ("patch", "/api/v1/documents/{document}/", {"metadata": {NUL: 1}}, "metadata"),
        (
            "patch",
            "/api/v1/collections/{slug}/",
            {"search_config": f"english{NUL}"},
            "search_config",
        ),
        ("post", "/api/v1/collections/{slug}/grants/", {"user": f"u{NUL}"}, "user"),
        ("post", "/api/v1/search/", {"query": "a", "filters": {"documents": [2**70]}}, "filters"),
        ("post", "/api/v1/search/", {"query": "a", "filters": {"metadata": {"k": NUL}}}, "filters"),
        (
            "post",
            "/api/v1/context/",
            {"query": "a", "filters": {"metadata_any": {"k": [NUL]}}},
            "filters",
        ),
    ],
)
def test_input_the_database_cannot_take_is_a_400(
    token_client: APIClient, seeded: Seeded, method: str, path: str, body: Any, field: str
) -> None:
    """NUL characters (which PostgreSQL cannot store) and ids past bigint once were 500s."""
    path = path.format(slug=seeded.collection, document=seeded.document_id)
    body = json.loads(json.dumps(body).replace("{slug}", seeded.collection))
    response = getattr(token_client, method)(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


def test_too_many_query_parameters_answer_the_api_error_shape(token_client: APIClient) -> None:
    """Django refuses over DATA_UPLOAD_MAX_NUMBER_FIELDS parameters with its HTML 400 page;
    the API answers its JSON error instead (the fuzzer sent such a query string)."""
    query = "&".join(f"documents={i}" for i in range(1001))
    response = token_client.get(f"/api/v1/search/?query=a&{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]


@pytest.mark.parametrize("parameter", ["collection", "status"])
def test_document_list_filter_with_nul_is_not_a_500(
    token_client: APIClient, parameter: str
) -> None:
    """A filter no document can match answers an empty page or a 400 that names it."""
    response = token_client.get("/api/v1/documents/", {parameter: f"x{NUL}"})
    if response.status_code == 200:
        assert response.json()["results"] == []
    else:
        assert response.status_code == 400, response.content
        assert parameter in response.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/api/v1/search/", "/api/v1/documents/", "/api/v1/context/", "/api/v1/tokens/"]
)
@pytest.mark.parametrize("depth", [100_000, 40])
def test_deeply_nested_json_is_a_400(token_client: APIClient, path: str, depth: int) -> None:
    """100,000 nested arrays made Python's JSON decoder raise RecursionError: a 500. Bodies
    deeper than API_JSON_MAX_DEPTH are refused before any code walks them."""
    body = "[" * depth + "]" * depth
    response = token_client.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"] == "JSON parse error - nested too deeply: at most 32 levels"


def test_json_within_the_depth_limit_is_read(token_client: APIClient, seeded: Seeded) -> None:
    body = {"name": "nested", "unused": _nested("x", 30)}
    response = token_client.post("/api/v1/tokens/", body, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/search/", {"query": "a", "mode": "hybrid\udfff"}),
        ("/api/v1/context/", {"query": "a\ud800"}),
        ("/api/v1/tokens/", {"name\udc00": "x"}),
    ],
)
def test_lone_surrogates_in_json_are_a_400(token_client: APIClient, path: str, body: Any) -> None:
    """Echoed in "... is not a valid choice", a lone surrogate made the response
    unencodable: a 500 (found by the fuzzing above)."""
    response = token_client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert "lone surrogate" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/documents/0.5/", "/api/v1/collections/{slug}/grants/%C2%84/", "/api/v1/nope/"],
)
def test_api_urls_that_match_no_route_answer_the_json_error(
    token_client: APIClient, seeded: Seeded, path: str
) -> None:
    """Django's URL resolver answered these with its HTML 404 page, which the schema
    does not document (the fuzzer's ids such as "0.5" and slugs with a newline)."""
    response = token_client.get(path.format(slug=seeded.collection))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
    page = token_client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
