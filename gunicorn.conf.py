"""gunicorn settings for production (docker-compose.yml's `web` service).

Threads rather than extra processes: each process loads the embedding model for query
embeddings (the int8 ONNX export by default, without torch), and threads let one slow
request (a long upload, a streamed answer) run without blocking the others.

The workers share the cores: each gives the model EMBEDDING_THREADS threads, by default
the cores divided by the workers (onnxruntime and torch would each take every core per
process, and the workers' queries would then wait on each other's threads).

Streamed answers (/api/v1/ask/ with "stream": true) each hold one thread while the model
writes, so WORKERS x THREADS is also the number of answers streaming at once (plus the
other requests). With the gthread worker, `timeout` only restarts a process whose main
loop stops responding; it does not cut a long stream, which ends when the model is done or
stays silent for LLM_TIMEOUT seconds. A proxy in front must not buffer text/event-stream
(the API sends `X-Accel-Buffering: no` for nginx) and must allow reads as long.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"  # not "sync": one stream would block its whole process
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
os.environ.setdefault(
    "EMBEDDING_THREADS", str(max(1, len(os.sched_getaffinity(0)) // max(1, workers)))
)
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


def post_worker_init(worker: object) -> None:
    """Load the embedding model before the first request instead of during it.

    Only the served processes pay for it; `manage.py` commands stay light. A model that
    does not load (no ONNX export: `manage.py prepare_models`) leaves the worker up with
    /readyz answering 503 and the reason, rather than restarting it in a loop.
    """
    from documents.embedding import preload

    preload(background=False)


def on_starting(server: object) -> None:
    """Metrics of a previous run must not add to this one's (prometheus-client's
    multiprocess mode, PROMETHEUS_MULTIPROC_DIR: one file per process and metric type)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server: object, worker: object) -> None:
    """A restarted worker's live gauges go; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
