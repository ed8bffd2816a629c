"""`python -m bench [NAME ...] [options]`: run every benchmark, or those named."""

from __future__ import annotations

import argparse
import sys

from bench import (
    api_bodies,
    broker_aliases,
    broker_hardening,
    cleanup,
    core_connect,
    fd_table,
    fleet,
    functions,
    indexing,
    iotlogging,
    jit,
    jobs,
    jobs_fleet,
    localcore,
    logs,
    peer,
    provisioning,
    rules,
    scale_out,
    server_tls,
    shadows,
    startup,
    tls_paths,
)
from bench.report import print_table, write_json

BENCHMARKS = {"localcore": localcore, "fleet": fleet, "shadows": shadows,
              "broker-hardening": broker_hardening, "api-bodies": api_bodies,
              "cleanup": cleanup, "provisioning": provisioning, "jit": jit, "logs": logs,
              "indexing": indexing, "functions": functions, "rules": rules,
              "iotlogging": iotlogging, "jobs": jobs, "jobs-fleet": jobs_fleet,
              "broker-aliases": broker_aliases, "ray": scale_out, "peer": peer,
              "tls-paths": tls_paths, "core-connect": core_connect,
              "server-tls": server_tls, "startup": startup, "fd-table": fd_table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    for module in BENCHMARKS.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: "
                     f"{', '.join(BENCHMARKS)}")
    failed = False
    for name in names:
        data, rows = BENCHMARKS[name].run(args)
        data.pop("_devices", None)
        path = write_json(data.pop("_results", name), data)  # a bench may name its file
        print_table(f"{name}  ({data.get('elapsed_s', '?')} s; full results in {path})", rows)
        if data.get("errors"):
            failed = True
            for part, error in data["errors"].items():
                print(f"  ! {part} failed: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
