"""The one place Kafka client options are made: where the brokers are and how to talk
to them (TLS, SASL), all from :class:`Settings` (README: Secured connections).

Every producer, consumer and admin client of the product is built with
``**kafka_options(settings)`` (the faust driver's credentials are made from the same
settings, in engine/inbox.py), so the settings alone move a deployment to TLS or SASL.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from switchyard.schemas.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the SSL and SASL_SSL protocols (None for the others): the
    brokers' certificates checked against ``kafka_ssl_cafile`` (or the system's CAs),
    and the client certificate when one is set."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
    return context


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client (producer, consumer, admin) takes:
    ``bootstrap_servers``, ``security_protocol`` and, as the protocol needs them,
    ``ssl_context`` and the SASL mechanism and credentials."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        # Settings refuse a SASL_* protocol without both, so neither is None here.
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options
