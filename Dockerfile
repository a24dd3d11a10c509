# syntax=docker/dockerfile:1
# Tenantry's image. The build stage installs the package into a virtual environment; the
# final stage copies only that environment onto a slim Python: no compiler, no pip, no
# source tree, a non-root user, and a health check on /readyz.
#
#   docker build -t tenantry .
#   docker run --env-file tenantry.env tenantry            # serve (production)
#   docker run --env-file tenantry.env tenantry migrate    # any tenantry command
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Every dependency ships wheels for linux/amd64 and arm64, so nothing is compiled here.
RUN python -m venv --without-pip /opt/tenantry
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY app ./app
RUN pip --python /opt/tenantry/bin/python install --compile .

FROM ${PYTHON_IMAGE}
# Nothing is installed at run time: pip leaves with the build stage.
RUN python -m pip uninstall --yes --quiet pip \
    && groupadd --system --gid 10001 tenantry \
    && useradd --system --uid 10001 --gid tenantry --home-dir /var/lib/tenantry \
       --create-home --shell /usr/sbin/nologin tenantry
COPY --from=build /opt/tenantry /opt/tenantry
ENV PATH=/opt/tenantry/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TENANTRY_ENV=production \
    TENANTRY_HOST=0.0.0.0 \
    TENANTRY_PORT=8000 \
    TENANTRY_DATA_DIR=/var/lib/tenantry
# A numeric user, so an orchestrator can verify it is not root (runAsNonRoot).
USER 10001:10001
WORKDIR /var/lib/tenantry
EXPOSE 8000
# Ready means the database and Redis answer (GET /readyz is 503 otherwise). Python, not curl:
# the slim image has no curl, and an HTTP error or a refused connection exits non-zero.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TENANTRY_PORT', '8000') + '/readyz', timeout=2)"]
ENTRYPOINT ["tenantry"]
CMD ["serve"]
