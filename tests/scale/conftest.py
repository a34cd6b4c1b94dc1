"""Fixtures for the past-one-machine tests: a real streaming replica of the test server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from ragsite import db_routing
from tests.scale.replica import StreamingReplica

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
