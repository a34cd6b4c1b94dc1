import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
application = get_wsgi_application()

if os.environ.get("EMBEDDING_PRELOAD") == "1":
    # `make run`'s runserver (ragsite/devserver.py): load the embedding model while the
    # server starts, not in the first search; /readyz is 503 until it is loaded.
    from documents.embedding import preload

    preload(background=True)
