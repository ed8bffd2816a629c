"""What a device's mutual-TLS handshake costs a client written in C, against local core (issue
9): the floor a native connect path would stand on.

    .venv/bin/python -m bench.handshake_floor [--seconds 5] [--rounds 3]

One device of local core's CA (`fleet_provision`, EC P-256), local core on CPU 0; the OpenSSL
command-line client (`openssl s_time -new`: a full handshake per connection, the device's
certificate and key, one context, no application data) on CPU 1 for `--seconds` per TLS
version and round. Its CPU (user and system, from the kernel's accounting of the child) is
divided by the handshakes it completed. This is the system's OpenSSL (`openssl version`), not
the one cryptography bundles, and it checks the server's chain at every handshake, as a
device does on its first connect. Results: `bench/results/handshake-floor.json`.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR
from bench.system import machine_info, taskset_prefix, utc_now

VERSIONS = {"1.3": "-tls1_3", "1.2": "-tls1_2"}
_COUNT = re.compile(r"(\d+) connections in [\d.]+s")


def handshakes(s_time_output: str) -> int:
    """How many connections `openssl s_time` reports it made (its first summary line);
    ValueError, with the output's end, when it reports none."""
    match = _COUNT.search(s_time_output)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"openssl s_time completed no handshake: {s_time_output[-300:]!r}")
    return int(match.group(1))


def one(host: str, cert: Path, key: Path, ca: str, version: str,
        seconds: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*taskset_prefix(1), "openssl", "s_time", "-connect", host,
                           "-cert", str(cert), "-key", str(key), "-CAfile", ca, "-new",
                           "-time", str(seconds), VERSIONS[version]],
                          capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = handshakes(done.stdout + done.stderr)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"handshakes": n, "cpu_ms": round((user + system) * 1000 / n, 3),
            "user_ms": round(user * 1000 / n, 3), "system_ms": round(system * 1000 / n, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.handshake_floor",
                                description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if shutil.which("openssl") is None:
        print("handshake_floor: no openssl command here", file=sys.stderr)
        return 1
    from bench.fleet_provision import provisioned_core

    runs: list[dict[str, Any]] = []
    with provisioned_core(1, "fleetsim-bench-floor-", cpu=0) as (_, info, ids):
        core = json.loads(Path(info).read_text())
        key = next(Path(ids).rglob("*.key"))
        host = f"{core['mqtt_host']}:{core['mqtt_port']}"
        for r in range(args.rounds):
            for version in VERSIONS:
                row = {"round": r + 1, "tls": version,
                       **one(host, key.with_suffix(".crt"), key, core["root_ca"], version,
                             args.seconds)}
                runs.append(row)
                print(json.dumps(row), flush=True)
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    report = {"bench": "handshake_floor", "at": utc_now(), "machine": machine_info(),
              "openssl": openssl.strip(), "parameters": vars(args), "runs": runs,
              "median_cpu_ms": {v: statistics.median(x["cpu_ms"] for x in runs
                                                     if x["tls"] == v) for v in VERSIONS}}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "handshake-floor.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report["median_cpu_ms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
