"""`python -m tests.cache.serve_cached '<json>'`: a gateway in its own process.

The JSON holds `config` (the gateway config) and `cache` (the cache section). It prints the port
on one line once serving, and stops when stdin closes, so a test can run several replicas.
"""

from __future__ import annotations

import json
import sys

from tests.fixtures.gateway import GatewayServer, make_config


def main() -> None:
    spec = json.loads(sys.argv[1])
    config = {**spec["config"], "cache": spec["cache"]}
    server = GatewayServer(make_config(config, spec.get("env", {})))
    server.start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
