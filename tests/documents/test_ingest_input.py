"""`manage.py ingest` refuses input the database would refuse, before uploading anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from documents.models import Collection, Document


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metadata": '{"a": "\\u0000"}'}, "NUL"),
        ({"metadata": '{"a": "\\ud800"}'}, "surrogate"),
        ({"collection": "Not a slug"}, "not a slug"),
    ],
)
def test_ingest_refuses_bad_input_before_uploading(
    db: None, tmp_path: Path, options: dict[str, str], message: str
) -> None:
    (tmp_path / "a.txt").write_text("Some words.")
    with pytest.raises(CommandError, match=message):
        call_command("ingest", str(tmp_path), verbosity=0, **{"collection": "c", **options})
    assert not Document.objects.exists() and not Collection.objects.exists()
