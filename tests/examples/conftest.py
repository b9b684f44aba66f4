from tests.consumers.stack import (  # noqa: F401  (fixtures)
    api,
    client,
    engine,
    templates,
    topics,
)
