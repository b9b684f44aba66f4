# The Switchyard image: one image for the engine, the executors, the bridge and the CLI.
FROM python:3.11-slim
WORKDIR /app
# Graphviz dot lays out the web UI's workflow graphs.
RUN apt-get update && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY build_backend build_backend
COPY schemas schemas
COPY topics topics
COPY engine engine
COPY consumers consumers
COPY bridge bridge
COPY cli cli
RUN pip install --no-cache-dir .
ENTRYPOINT ["switchyard"]
