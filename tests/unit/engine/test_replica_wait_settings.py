"""redis_wait_replicas is refused with the faust driver, naming both settings, and
takes only sane values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchyard.schemas.settings import Settings


def test_the_faust_driver_is_refused_with_replica_waits() -> None:
    with pytest.raises(ValidationError, match="SWITCHYARD_REDIS_WAIT_REPLICAS=2"):
        Settings(engine_driver="faust", redis_wait_replicas=2)
    assert Settings(engine_driver="faust").redis_wait_replicas == 0
    assert Settings(redis_wait_replicas=2).engine_driver == "aiokafka"


@pytest.mark.parametrize(
    ("field", "value"),
    [("redis_wait_replicas", -1), ("redis_wait_timeout_ms", 0)],
)
def test_out_of_range_values_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})
