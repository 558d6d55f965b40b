# syntax=docker/dockerfile:1
# Any Threadline service; the build argument SERVICE names it. Build from the repository root:
#   docker build --build-arg SERVICE=messaging -t threadline-messaging .
# Only libs/contracts, libs/kit and that service go in; versions come from uv.lock.

FROM python:3.11-slim AS build
ARG SERVICE
RUN test -n "$SERVICE" || (echo "build with --build-arg SERVICE=<name>" >&2 && exit 1)
RUN pip install --no-cache-dir "uv>=0.13,<0.14"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first: this layer is reused until a pyproject.toml or uv.lock changes.
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/kit/pyproject.toml libs/kit/
COPY services/${SERVICE}/pyproject.toml services/${SERVICE}/
RUN uv sync --frozen --no-dev --no-install-workspace --package threadline-${SERVICE} --python /usr/local/bin/python3.11
# Then the code itself, installed as wheels (non-editable) into the same venv.
COPY libs/contracts libs/contracts
COPY libs/kit libs/kit
COPY services/${SERVICE} services/${SERVICE}
RUN uv sync --frozen --no-dev --no-editable --package threadline-${SERVICE} --python /usr/local/bin/python3.11

FROM python:3.11-slim
ARG SERVICE
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin threadline
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    THREADLINE_SERVICE_MODULE=threadline.${SERVICE}.main
WORKDIR /app
USER threadline
EXPOSE 8000
# exec: uvicorn is PID 1 and gets SIGTERM itself; it finishes requests within 15 s.
CMD ["sh", "-c", "exec uvicorn --factory \"$THREADLINE_SERVICE_MODULE:create_app\" --host 0.0.0.0 --port 8000 --timeout-graceful-shutdown 15"]
