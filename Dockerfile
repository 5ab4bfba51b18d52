# syntax=docker/dockerfile:1
#
# telemed, one image for every role (web, worker, scheduler, migrations).
# docker-compose.yml runs it; docs/deploy.md explains the deployment.
#
# Two stages: the project and its dependencies are installed into a virtualenv
# in "build"; the runtime stage copies only that virtualenv, so no source
# tree, wheel cache or build dependency ends up in the image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/telemed
ENV PATH=/opt/telemed/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY flows ./flows
COPY channels ./channels
COPY web ./web
COPY bots ./bots
# The cache mount speeds up rebuilds and lives outside every image layer.
RUN --mount=type=cache,target=/root/.cache/pip pip install .

# A wheel that silently left out its data files would only fail at start-up
# (templates, the dashboard's static files, migrations, message catalogs):
# fail the build instead.
RUN python -I -c "\
from pathlib import Path; import core, web; \
need = [Path(web.__file__).parent / 'static' / 'dash.css', \
        Path(web.__file__).parent / 'templates' / 'dash' / 'base.html', \
        Path(core.__file__).parent / 'migrations' / 'env.py', \
        Path(core.__file__).parent / 'i18n' / 'en.toml']; \
missing = [str(p) for p in need if not p.is_file()]; \
raise SystemExit('installed package lacks data files: ' + ', '.join(missing) if missing else 0)"
RUN telemed --help >/dev/null


FROM ${PYTHON_IMAGE}

ENV PATH=/opt/telemed/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed numeric uid, so orchestrators can check runAsNonRoot and volume
# ownership is predictable.
RUN groupadd --system --gid 10001 telemed \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app \
       --shell /usr/sbin/nologin telemed \
    && mkdir -p /app/var \
    && chown telemed:telemed /app/var

COPY --from=build /opt/telemed /opt/telemed

# var/ holds the SQLite file of the default TELEMED_DATABASE_URL, for a quick
# `docker run`; real deployments set a PostgreSQL URL.
WORKDIR /app
USER 10001:10001

EXPOSE 8000

# Liveness only (the process answers); readiness (/readyz: database reachable,
# migrations current) is for the load balancer. slim has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Migrations run once per release, in their own one-shot container
# (`telemed db upgrade`), never from each replica at start.
CMD ["telemed", "serve", "--host", "0.0.0.0", "--no-migrate"]
