"""gunicorn settings for production (docker-compose.yml's `web` service).

Threads rather than extra processes: each process loads the embedding model for query
embeddings (~100 MB), and threads let one slow request (a long upload, a streamed
answer) run without blocking the others.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


def post_worker_init(worker: object) -> None:
    """Load the embedding model before the first request instead of during it.

    Only the served processes pay for it; `manage.py` commands stay light.
    """
    from documents.embedding import get_model

    get_model()
