FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY core ./core
COPY flows ./flows
COPY channels ./channels
COPY web ./web
COPY bots ./bots
RUN pip install --disable-pip-version-check . \
    && useradd --create-home --uid 10001 telemed \
    && mkdir -p /app/var && chown telemed /app/var

USER telemed
EXPOSE 8000
CMD ["telemed", "serve", "--host", "0.0.0.0"]
