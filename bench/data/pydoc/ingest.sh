#!/bin/sh
# Ingest the pydoc corpus (fetch.py's pages) into the collection `pydoc` the way a user
# would: one `manage.py ingest --wait` of the folder, every page through the product's
# extraction, chunking and embedding. Run from anywhere; extra arguments go to ingest
# (e.g. --collection pydoc-test). Re-running skips pages already present (same content).
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
CORPUS="${PYDOC_CORPUS:-$ROOT/var/corpora/pydoc}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
if [ ! -d "$CORPUS" ] || [ -z "$(ls "$CORPUS"/*.html 2>/dev/null)" ]; then
    echo "no pages in $CORPUS: run python3 bench/data/pydoc/fetch.py first" >&2
    exit 1
fi
echo "ingesting $(ls "$CORPUS"/*.html | wc -l) pages from $CORPUS"
set -x
exec "$PYTHON" "$ROOT/manage.py" ingest "$CORPUS" --glob '*.html' --collection pydoc --wait "$@"
