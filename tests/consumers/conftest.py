from tests.consumers.stack import (  # noqa: F401  (fixtures)
    api,
    client,
    driver,
    engine,
    producer,
    redis,
    templates,
    topics,
)
