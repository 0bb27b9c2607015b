# syntax=docker/dockerfile:1
#
# One image per service, all built from this file by target:
#
#   docker build --target api-studio        -t clockify-addons/api-studio .
#   docker build --target universal-webhook -t clockify-addons/universal-webhook .
#   docker build --target clockify-addon    -t clockify-addons/clockify-addon .
#   docker build --target simulator         -t clockify-addons/simulator .   # demo only
#
# `build` turns the one distribution into a wheel (alembic/ travels inside it as
# clockify_core/db/migrations) and installs it with its runtime dependencies into a
# virtualenv; `runtime` copies only that virtualenv: no dev extra, no compilers, no pip cache.
# The service stages differ only in their command, port and SERVICE_CLI.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, so this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY alembic ./alembic
COPY clockify_core ./clockify_core
COPY api_studio ./api_studio
COPY universal_webhook ./universal_webhook
COPY clockify_addon ./clockify_addon
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps /dist/clockify_addons-*.whl \
 && /opt/venv/bin/pip check


FROM python:3.11-slim AS runtime
# PROMETHEUS_MULTIPROC_DIR: the gunicorn workers write their metrics there (in memory, under
# /dev/shm) so /metrics sums all of them; gunicorn_conf empties it when the server starts.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WEB_CONCURRENCY=2 \
    PROMETHEUS_MULTIPROC_DIR=/dev/shm/prometheus
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it. /app/data holds the
# SQLite default (mount a volume there, or set {PREFIX}DB_URL to PostgreSQL).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app/data \
 && chown app:app /app/data
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 scripts/docker/entrypoint.sh /usr/local/bin/docker-entrypoint
WORKDIR /app
USER 10001:10001
# Readiness, not liveness: /ready answers 200 once the database is reachable and migrated
# (and Redis, when configured). It follows PORT: move the port with PORT, not BIND.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/ready', timeout=4)"]
ENTRYPOINT ["docker-entrypoint"]


# Gunicorn with uvicorn workers: WEB_CONCURRENCY workers on PORT (clockify_core/gunicorn_conf.py).
# Heartbeat files go to /dev/shm: a container's /tmp may sit on a slow overlay filesystem.
FROM runtime AS api-studio
ENV SERVICE_CLI=api-studio \
    PORT=8000
EXPOSE 8000
CMD ["gunicorn", "--config", "python:clockify_core.gunicorn_conf", "--worker-tmp-dir", "/dev/shm", "api_studio.main:app"]


FROM runtime AS universal-webhook
ENV SERVICE_CLI=universal-webhook \
    PORT=8001
EXPOSE 8001
CMD ["gunicorn", "--config", "python:clockify_core.gunicorn_conf", "--worker-tmp-dir", "/dev/shm", "universal_webhook.main:app"]


FROM runtime AS simulator
ENV PORT=8090
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8090') + '/__sim/public-key', timeout=4)"]
ENTRYPOINT ["clockify-sim"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8090", "--key-dir", "/app/data"]


# Last, so a plain `docker build .` gives the reference add-on.
FROM runtime AS clockify-addon
ENV SERVICE_CLI=clockify-addon \
    PORT=8002
EXPOSE 8002
CMD ["gunicorn", "--config", "python:clockify_core.gunicorn_conf", "--worker-tmp-dir", "/dev/shm", "clockify_addon.main:app"]
