"""Where settings come from: the process environment, then ``.env`` (git-ignored).

Shared by ``ragsite/settings.py`` and ``ragsite/settings_search.py``; nothing else reads it.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# The embedded database, media, collected static files and the generated secret (git-ignored).
VAR_DIR = Path(env.str("RAGSITE_VAR_DIR", default=str(BASE_DIR / "var")))
