"""The project starts whatever imports DRF's settings first, in any checkout folder.

DRF imports the classes its settings name on first use, some of them (throttles,
authentication, pagination) while rest_framework.views/generics is still loading. A
module named there that imported rest_framework.views itself made a circle; whether it
was hit depended on which system check ran first (Django keeps them in a set), so
`manage.py check` and `migrate` failed in some checkout folders and not in others.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
# No database is needed to import or check; a closed port makes sure none is started.
NO_DATABASE = "postgres://nobody:nothing@127.0.0.1:9/none"


def _dotted_paths() -> list[tuple[str, str]]:
    paths = []
    for name, value in settings.REST_FRAMEWORK.items():
        values = value if isinstance(value, list | tuple) else [value]
        paths += [(name, v) for v in values if isinstance(v, str) and "." in v]
    hooks = cast(list[str], settings.SPECTACULAR_SETTINGS.get("POSTPROCESSING_HOOKS", []))
    paths += [("POSTPROCESSING_HOOKS", hook) for hook in hooks]
    return paths


def _environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ragsite.settings",
        "DATABASE_URL": NO_DATABASE,
        **extra,
    }


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_setting_names_a_dotted_path() -> None:
    """The parametrisation below is not empty and covers what DRF imports early."""
    names = {name for name, _ in _dotted_paths()}
    assert {
        "DEFAULT_THROTTLE_CLASSES",
        "DEFAULT_PAGINATION_CLASS",
        "DEFAULT_AUTHENTICATION_CLASSES",
        "EXCEPTION_HANDLER",
        "DEFAULT_SCHEMA_CLASS",
        "POSTPROCESSING_HOOKS",
    } <= names


@pytest.mark.parametrize(("setting", "path"), _dotted_paths())
def test_each_dotted_path_imports_first_in_a_fresh_interpreter(setting: str, path: str) -> None:
    """Import the path before anything else of DRF, then let DRF resolve all its
    settings (which imports rest_framework.views and generics)."""
    code = f"""
import django
django.setup()
from django.utils.module_loading import import_string
import_string({path!r})
from rest_framework.settings import api_settings
from rest_framework import generics, views
for name in api_settings.defaults:
    getattr(api_settings, name)
print("imported")
"""
    result = _python(code, BASE_DIR)
    assert result.returncode == 0, f"{setting}: {path}\n{result.stderr[-3000:]}"
    assert "imported" in result.stdout


def test_drf_views_import_before_the_app_registry_is_ready() -> None:
    """A module that imports rest_framework.views while apps load (an app's models or
    admin) makes DRF import our throttles and authentication then: they must not need
    models at import time."""
    code = (
        "from rest_framework import generics, views\n"
        "print(views.APIView.throttle_classes, generics.GenericAPIView.pagination_class)\n"
    )
    result = _python(code, BASE_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ragsite.api.throttles.AnonThrottle" in result.stdout


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Fresh clones of HEAD under differently nested folders (as the bug report's)."""
    root = tmp_path_factory.mktemp("clones")
    folders = ["a", "x/y/z/c", "deep/er/and/deeper/still/c", "with space/q"]
    made = []
    for folder in folders:
        target = root / folder / "ragsite"
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(BASE_DIR), str(target)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        made.append(target)
    return made


@pytest.mark.parametrize(
    "arguments",
    [
        ["check"],
        # Only DRF's own check, which reads DEFAULT_PAGINATION_CLASS before anything has
        # imported rest_framework.views: the order that used to fail.
        ["check", "--tag", "compatibility"],
        ["check", "--deploy"],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_manage_py_check_passes_in_fresh_clones(clones: list[Path], arguments: list[str]) -> None:
    for clone in clones:
        result = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=clone,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        output: Any = result.stdout + result.stderr
        assert result.returncode == 0, f"{clone}: {output[-3000:]}"
        assert "ImportError" not in output
