FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY khidma ./khidma
RUN pip install . && useradd --create-home --uid 10001 khidma && mkdir -p /data && chown khidma /data
USER khidma
ENV KHIDMA_DATA_DIR=/data KHIDMA_HTTP_HOST=0.0.0.0
