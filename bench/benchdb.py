"""Dedicated benchmark databases next to the product's, on the same PostgreSQL server.

Benchmarks that drop indexes, bulk-load a million rows or run a web server under load
must never touch the product's own data. A script calls :func:`use_database` *before*
``django.setup()``: the process's default database becomes ``<product name>_<suffix>``
(``ragsite_scale_1000000``, ``ragsite_load``) and the alias ``product`` keeps pointing at
the product's database, for reading only (e.g. the SciFact evaluation collection).
Works with the embedded server (``EMBEDDED_DB_NAME``) and with ``DATABASE_URL`` alike;
creating a database needs the CREATEDB privilege (the embedded server's user has it).
"""

from __future__ import annotations

import copy
from urllib.parse import quote, urlencode

PRODUCT = "product"


def use_database(suffix: str) -> str:
    """Point the default alias at the benchmark database; return its name."""
    from django.conf import settings

    databases = settings.DATABASES
    product = databases.setdefault(PRODUCT, copy.deepcopy(databases["default"]))
    name = f"{product['NAME']}_{suffix}"
    databases["default"] = {**copy.deepcopy(product), "NAME": name}
    return name


def database_exists(name: str) -> bool:
    from django.db import connections

    with connections[PRODUCT].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


def database_create(name: str, *, replace: bool = False) -> None:
    """Create the (empty) database; ``replace`` drops an existing one first."""
    from django.db import connections

    connections["default"].close()
    with connections[PRODUCT].cursor() as cursor:
        quoted = connections[PRODUCT].ops.quote_name(name)
        if replace:
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {quoted}")


def database_drop(name: str) -> None:
    from django.db import connections

    connections["default"].close()
    with connections[PRODUCT].cursor() as cursor:
        quoted = connections[PRODUCT].ops.quote_name(name)
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


def database_url() -> str:
    """The default database as a DATABASE_URL for child processes (gunicorn, workers).

    A Unix socket (the embedded server) is passed as ``?host=/path``.
    """
    from django.db import connection

    connection.ensure_connection()
    params = connection.get_connection_params()
    user = quote(str(params.get("user") or ""), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else f"{user}@"
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or 5432)
    name = quote(connection.settings_dict["NAME"], safe="")
    if host.startswith("/"):
        return f"postgres://{auth}/{name}?{urlencode({'host': host, 'port': port})}"
    return f"postgres://{auth}{host}:{port}/{name}"
