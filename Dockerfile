# The image of the four Khidma services; docker-compose.yml picks the service
# with its `command` (python -m services.<name>).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# A non-root user; /data holds the disposable read models (the event stores are
# in PostgreSQL in the compose deployment); /data/outbox exists so that a volume
# mounted there (surveys' invitation outbox) is the user's too.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin khidma \
    && mkdir -p /data/outbox && chown -R khidma:khidma /data

# Dependencies from the pinned project (pyproject.toml pins every one with ==),
# installed in their own layer so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services khidma audit && touch shared/__init__.py services/__init__.py khidma/__init__.py audit/__init__.py \
    && pip install . && pip uninstall -y khidma && rm -rf shared services khidma audit build *.egg-info

COPY shared ./shared
COPY services ./services
COPY khidma ./khidma
COPY audit ./audit
COPY policies ./policies
RUN pip install --no-deps . && rm -rf build *.egg-info

USER khidma
ENV KHIDMA_DATA_DIR=/data KHIDMA_HTTP_HOST=0.0.0.0 KHIDMA_HTTP_PORT=8000 \
    KHIDMA_POLICIES_DIR=/app/policies
EXPOSE 8000
CMD ["python", "-m", "services.intake"]
