"""Start the integration as Ocean's own integrations' ``debug.py`` does: ``run()``.

(``ocean sail`` does the same, but the CLI needs the ``port-ocean[cli]`` extra.)
Usage: ``python debug.py <port of the integration's own HTTP server>``.
"""

from __future__ import annotations

import sys

from port_ocean.run import run  # type: ignore[import-not-found]

if __name__ == "__main__":
    run(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
