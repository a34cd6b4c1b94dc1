# Production image: gunicorn web and django-q2 worker share it (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app

# OCR of scanned PDF pages and images (documents/extraction/ocr.py): Tesseract with the
# English and German packs; add tesseract-ocr-<code> for other collection languages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu \
 && rm -rf /var/lib/apt/lists/*

# torch from PyTorch's CPU wheel index first: the default PyPI wheel pulls in several GB
# of CUDA libraries that a CPU-only server never uses.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# The runtime lock only: no test, fuzzing, load-test or type-checking tools in the image
# (those are in requirements-dev.lock). It leaves torch out: the CPU build above is it.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY . .
# prepare_models: the int8 ONNX export of the packaged embedding model (EMBEDDING_BACKEND=onnx,
# the default), made once here so that no container exports at start (or twice).
RUN SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --noinput \
 && SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    python manage.py prepare_models \
 && useradd --system --uid 1000 app && mkdir -p /data/media && chown -R app /data
USER app

EXPOSE 8000
CMD ["gunicorn", "ragsite.wsgi:application", "--config", "gunicorn.conf.py"]
