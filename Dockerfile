# labelrouter: one image for every role (API, RQ worker, scheduler, migrations).
# docker-compose.yml shows the production shape; run alone, the default CMD serves the embedded
# default (SQLite under /app/var + in-process Redis + a worker thread).

# ---- build: resolve the runtime dependencies from uv.lock (no dev extras) -------------------
FROM python:3.11-slim AS build

RUN pip install --no-cache-dir "uv==0.13.9"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself (installed in place, so config/ stays next to router/).
COPY router/ router/
COPY workers/ workers/
COPY config/ config/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && /app/.venv/bin/python -m compileall -q router workers

# ---- runtime: the virtualenv and the sources, no uv, no build caches -------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 labelrouter \
    && useradd --system --uid 10001 --gid labelrouter --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin labelrouter

WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /app/var && chown labelrouter:labelrouter /app/var

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ROUTER_VAR_DIR=/app/var \
    ROUTER_ROUTING_CONFIG=/app/config/routing.yaml

USER labelrouter
EXPOSE 8000

# No HEALTHCHECK here: the same image runs workers and the scheduler, which serve no HTTP;
# docker-compose.yml checks the API on /ready.
CMD ["labelrouter", "serve", "--host", "0.0.0.0", "--port", "8000"]
