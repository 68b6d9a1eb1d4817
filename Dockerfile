# gdpr-daemon container image.
#
#   docker build -t gdpr-daemon .
#   docker run --read-only --tmpfs /tmp -e GDPR_DAEMON_DATABASE_URL=... gdpr-daemon
#
# Two stages: the builder installs the project into a virtualenv with the same command
# as the README (`pip install .`); the final stage copies only that virtualenv onto a
# clean slim Python, so no compiler, pip cache or source tree ships.  The final image
# runs as uid 10001, writes nothing outside /tmp (works with a read-only root
# filesystem), logs JSON lines to stderr and serves /healthz, /readyz and /metrics on
# port 8080.  Migrations ship inside the package (as gdpr_daemon.migrations): run `gdpr-daemon migrate` with the
# same image (a Kubernetes Job, or `docker run ... gdpr-daemon migrate`).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gdpr-daemon
ENV PATH=/opt/gdpr-daemon/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gdpr_daemon ./gdpr_daemon
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && gdpr-daemon --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gdpr-daemon" \
      org.opencontainers.image.description="Submits GDPR forget and rectify requests to OwnBackup and keeps the audit trail" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 gdpr \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gdpr
COPY --from=builder /opt/gdpr-daemon /opt/gdpr-daemon
ENV PATH=/opt/gdpr-daemon/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    GDPR_DAEMON_LOG_FORMAT=json \
    GDPR_DAEMON_HEALTH_ADDRESS=0.0.0.0:8080
USER 10001:10001
WORKDIR /tmp
VOLUME ["/tmp"]
EXPOSE 8080
# No curl in a slim image: ask /healthz with the Python that is there anyway.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('GDPR_DAEMON_HEALTH_ADDRESS', ':8080').rpartition(':')[2]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["gdpr-daemon"]
CMD ["run"]
