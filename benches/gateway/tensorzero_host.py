#!/usr/bin/env python3
"""Runs TensorZero's HTTP gateway for the gateway_overhead bench.

    tensorzero_host.py CONFIG_TOML ADDRESS_FILE

The `tensorzero` wheel on PyPI holds TensorZero's whole Rust gateway; its
`_start_http_gateway` (the helper behind `patch_openai_client`) starts the HTTP
server on its own tokio runtime, on a free loopback port, and returns once it
answers. This script writes the base URL to ADDRESS_FILE (whole, by a rename) and
then only waits for SIGTERM: the gateway's threads do all the work, and Python
holds no lock they need.
"""

import os
import signal
import sys

from tensorzero import _start_http_gateway


def main() -> None:
    config, address_file = sys.argv[1], sys.argv[2]
    gateway = _start_http_gateway(
        config_file=config,
        clickhouse_url=None,
        postgres_url=None,
        valkey_url=None,
        async_setup=False,
    )
    partial = address_file + ".partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write(gateway.base_url + "\n")
    os.replace(partial, address_file)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    gateway.close()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
