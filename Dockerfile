# The Switchyard image: one image for the engine, the executors, the bridge and the CLI.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY topics topics
COPY engine engine
COPY consumers consumers
COPY bridge bridge
COPY cli cli
RUN pip install --no-cache-dir .
ENTRYPOINT ["switchyard"]
