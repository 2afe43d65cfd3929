# The jwt-revocation command in a small image: by default the HTTP sidecar on port 8080; any
# other command (receive, relay, topic ensure, demo...) as the container's arguments.
#   docker build -t jwt-revocation:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -e JWT_REVOCATION_BOOTSTRAP_SERVERS=kafka:9092 jwt-revocation:0.1.0
# tests/unit/test_deploy_image.py checks what can be checked without a Docker engine.
FROM python:3.11-slim

# Unbuffered: a container's log collector gets each line when it is written, not at exit.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Every folder pyproject.toml maps into the package, with the files its build reads.
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY api api
COPY producer producer
COPY consumer consumer
COPY shared shared
COPY cli cli
COPY django_integration django_integration
# The exact versions the test suite ran against; [http] for the sidecar's endpoints, [redis]
# for its snapshots and blocklist, [outbox] for `jwt-revocation relay` and `receive`.
RUN pip install --constraint constraints.txt ".[http,redis,outbox]"

# A numeric user, so that Kubernetes' runAsNonRoot can verify that it is not root.
USER 10001:10001

# The HTTP sidecar (sidecar --http), the receiver (receive) and the relay (relay --http).
EXPOSE 8080 8081 8082

# Healthy once the sidecar can decide; python, since a slim image has no curl. Another command
# in this image serves no /readyz on 8080: disable or replace the check there.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]

ENTRYPOINT ["jwt-revocation"]
# Beyond the container's loopback, so that the published port and probes reach it; set
# JWT_REVOCATION_HTTP_TOKEN to require a bearer token on POST /v1/check.
CMD ["sidecar", "--http", "0.0.0.0:8080", "--http-allow-remote"]
