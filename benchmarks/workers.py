"""The benchmark's worker process: completes node runs at once, for one workload.

    python -m benchmarks.workers chain|seq|webhook|claim [--ready-file F]

``chain``: an SDK :class:`KafkaWorker` on the node-run request topic (only the
``bench-chain`` workflow: ``bench-hold`` runs stay in flight). ``seq``: the same
worker on ``bench-seq``, one request at a time. ``webhook``: a minimal
keep-alive HTTP/1.1 server the WEBHOOK nodes call (its URL goes to the ready file).
``claim``: an SDK :class:`ClaimWorker` against the stack's API. Settings come from
the environment (``SWITCHYARD_*``), as for every Switchyard process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

from benchmarks.workloads import INSTALLATION
from switchyard.consumers import ClaimWorker, KafkaWorker, RunsClient, WorkContext
from switchyard.schemas.settings import Settings

_RESPONSE = b'{"ok":true}'
_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_RESPONSE)).encode()
    + b"\r\n\r\n"
)


async def complete(ctx: WorkContext) -> dict[str, Any]:
    """The node's work: none. The output is small and fixed, like the payloads."""
    return {"ok": True}


async def _serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 ``{"ok": true}`` to every request on a keep-alive connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(_HEAD + _RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _machine_secret(settings: Settings) -> str:
    saved = json.loads((settings.home / "dev-credentials.json").read_text())
    return str(next(c["client_secret"] for c in saved if c["client_id"] == "dev-machine"))


async def main(workload: str, ready_file: Path | None) -> None:
    settings = Settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready: dict[str, Any] = {"workload": workload}
    if workload == "chain":
        worker = KafkaWorker(settings, complete, workflows=["bench-chain"],
                             concurrency=256, max_records=500)  # fmt: skip
        async with worker:
            _write(ready_file, ready)
            await stop.wait()
    elif workload == "seq":
        worker = KafkaWorker(settings, complete, workflows=["bench-seq"])
        async with worker:
            _write(ready_file, ready)
            await stop.wait()
    elif workload == "webhook":
        server = await asyncio.start_server(_serve_http, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        ready["url"] = f"http://127.0.0.1:{port}/hook"
        async with server:
            _write(ready_file, ready)
            await stop.wait()
    elif workload == "claim":
        url = f"http://{settings.bridge_host}:{settings.bridge_port}"
        async with RunsClient(url, "dev-machine", _machine_secret(settings)) as client:
            # Short backoffs: an idle poll must not dominate latency at low offered rates.
            worker = ClaimWorker(client, INSTALLATION, complete, limit=100, concurrency=200,
                                 min_backoff=0.005, max_backoff=0.02)  # fmt: skip
            async with worker:
                _write(ready_file, ready)
                await stop.wait()
    else:
        raise SystemExit(f"unknown workload {workload!r}")


def _write(ready_file: Path | None, ready: dict[str, Any]) -> None:
    if ready_file is not None:
        ready_file.write_text(json.dumps(ready))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=["chain", "seq", "webhook", "claim"])
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    asyncio.run(main(args.workload, args.ready_file))
