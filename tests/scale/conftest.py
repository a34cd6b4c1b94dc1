"""Fixtures for the past-one-machine tests: a real streaming replica of the test server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from ragsite import db_routing
from tests.scale.pgbouncer import PgBouncer
from tests.scale.replica import StreamingReplica
from tests.scale.s3 import CREDENTIALS, S3Server

REPLICA_ALIAS = "replica_0"


@pytest.fixture(scope="session")
def streaming_replica(django_db_setup: None, django_db_blocker: Any) -> Iterator[StreamingReplica]:
    """Made after the test database exists, so the base backup holds it. Registered as the
    alias replica_0 (as DATABASE_REPLICA_URLS would) for the session, so that tests can
    list it in `databases`; the router uses it only where a test sets
    DATABASE_REPLICA_ALIASES (the `replica_db` fixture)."""
    with django_db_blocker.unblock():
        params = connections["default"].get_connection_params()
        database = connections["default"].settings_dict["NAME"]
    replica = StreamingReplica(
        primary={"host": params["host"], "port": params["port"], "user": params["user"]}
    )
    entry = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": params["user"],
        "HOST": replica.socket_dir,
        "PORT": str(replica.port),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 2},
        "TEST": {"MIRROR": "default"},  # never flushed or created: it follows the primary
    }
    connections.settings[REPLICA_ALIAS] = connections.configure_settings(
        {"default": dict(connections.settings["default"]), REPLICA_ALIAS: entry}
    )[REPLICA_ALIAS]
    yield replica
    for connection in connections.all(initialized_only=True):
        if connection.alias == REPLICA_ALIAS:
            connection.close()
            del connections[REPLICA_ALIAS]
    del connections.settings[REPLICA_ALIAS]
    replica.remove()


@pytest.fixture
def replica_db(
    transactional_db: None, streaming_replica: StreamingReplica, settings: Any
) -> Iterator[StreamingReplica]:
    """Reads of the read views may go to the replica (tests need
    `@pytest.mark.django_db(transaction=True, databases=["default", "replica_0"])`)."""
    settings.DATABASE_REPLICA_ALIASES = [REPLICA_ALIAS]
    db_routing.forget_replica_health()
    try:
        yield streaming_replica
    finally:
        connections[REPLICA_ALIAS].close()
        db_routing.forget_replica_health()


@pytest.fixture
def replicated(replica_db: StreamingReplica) -> Callable[[], None]:
    """Wait until the replica has every write the primary committed so far."""
    database = connections["default"].settings_dict["NAME"]

    def wait() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            (lsn,) = cursor.fetchone()
        replica_db.wait_caught_up(primary_lsn=lsn, database=database)

    return wait


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(log_path=tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_media(s3_server: S3Server, settings: Any) -> dict[str, str]:
    """MEDIA_STORAGE=s3 on a fresh bucket, in this process; answers the same settings as
    environment variables for the workers a test starts."""
    bucket = f"ragsite-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    env = {
        "MEDIA_STORAGE": "s3",
        "AWS_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_STORAGE_BUCKET_NAME": bucket,
        **CREDENTIALS,
    }
    for name, value in env.items():
        if name.startswith("AWS_"):
            setattr(settings, name, value)
    settings.MEDIA_STORAGE = "s3"
    # Changing STORAGES makes Django build the default storage again, with these settings.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    }
    return env


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup: None, django_db_blocker: Any) -> Iterator[PgBouncer]:
    with django_db_blocker.unblock():
        params = connections["default"].get_connection_params()
    bouncer = PgBouncer(
        upstream_host=params["host"], upstream_port=int(params["port"]), user=params["user"]
    )
    yield bouncer
    bouncer.stop()


@pytest.fixture
def through_pgbouncer(transactional_db: None, pgbouncer: PgBouncer) -> Iterator[PgBouncer]:
    """This thread's "default" connection goes through PgBouncer (transaction mode) for the
    test, configured as production would be behind it (DISABLE_SERVER_SIDE_CURSORS)."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    direct = connections["default"]
    settings_dict = {
        **direct.settings_dict,
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": str(pgbouncer.port),
        "USER": pgbouncer.user,
        "OPTIONS": {},
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    bounced = DatabaseWrapper(settings_dict, alias="default")
    connections["default"] = bounced
    try:
        yield pgbouncer
    finally:
        bounced.close()
        connections["default"] = direct
