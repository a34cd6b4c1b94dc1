"""PostgreSQL backend that starts the embedded server on first connection.

Identical to Django's own backend except that, before connecting, it makes sure the
embedded server from :mod:`ragsite.embedded_db` runs and points the connection at its
socket. Settings select it only when ``DATABASE_URL`` is unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.backends.postgresql import base

from ragsite.embedded_db import ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        options = self.settings_dict.get("OPTIONS", {})
        info = ensure_server(
            Path(options["embedded_pgdata"]),
            database=self.settings_dict["NAME"],
            keep_running=bool(options.get("embedded_keep_running", False)),
        )
        self.settings_dict["HOST"] = info.socket_dir
        self.settings_dict["PORT"] = str(info.port)
        self.settings_dict["USER"] = info.user
        params = super().get_connection_params()
        params.pop("embedded_pgdata", None)
        params.pop("embedded_keep_running", None)
        return params
