# The jwt-revocation CLI (sidecar, publisher, demo) in a small image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY producer producer
COPY consumer consumer
COPY shared shared
COPY cli cli
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
CMD ["jwt-revocation", "--help"]
