"""`python -m bench cleanup`: issue 8's crash-safety check at full size.

A 2,000-device provisioning run (`provision`: thing, certificate from a CSR, policy attached,
certificate attached to the thing; 64 devices at once) is killed with SIGKILL at 20 random
moments (seeded journal sizes spread over the whole of provisioning); after each kill,
`fleetsim cleanup` runs and what is left in local core (things, certificates, policies) is
counted. It must be 0 after every kill. Results: bench/results/cleanup.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.system import machine_info, utc_now
from tests.conftest import start_core
from tests.crash_drill import kill_and_clean, kill_moments, resources, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cleanup-devices", type=int, default=2000, metavar="N",
                        help="cleanup bench: devices of the provisioning run (default 2000)")
    parser.add_argument("--cleanup-kills", type=int, default=20, metavar="K",
                        help="cleanup bench: random moments to kill it at (default 20)")
    parser.add_argument("--cleanup-seed", type=int, default=2026,
                        help="cleanup bench: seed of the kill moments")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    moments = kill_moments(args.cleanup_devices, args.cleanup_kills, args.cleanup_seed)
    data: dict[str, Any] = {"benchmark": "cleanup", "started": utc_now(),
                            "machine": machine_info(), "devices": args.cleanup_devices,
                            "seed": args.cleanup_seed, "kill_at_entries": moments}
    kills = []
    with tempfile.TemporaryDirectory(prefix="bench-cleanup-") as tmp:
        core = start_core(Path(tmp) / "state" / "localcore", timeout=60)
        try:
            assert sum(resources(core).values()) == 0
            for n, at in enumerate(moments, 1):
                kill = kill_and_clean(core, Path(tmp), args.cleanup_devices, at)
                kills.append(kill)
                print(f"  kill {n}/{len(moments)} at {at} journal entries "
                      f"({kill.seconds_into_run:.1f} s in): left {kill.left}", flush=True)
        except Exception as e:  # the JSON still says what failed
            data["errors"] = {"cleanup": f"{type(e).__name__}: {e}"}
        finally:
            core.stop()
    data.update(summary(kills))
    if data["leftovers_total"] or data["cleanup_failures"]:
        data.setdefault("errors", {})["leftovers"] = (
            f"{data['leftovers_total']} resource(s) left, {data['cleanup_failures']} "
            "cleanup(s) failed")
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    rows = [Row("kills", len(kills), "", str(args.cleanup_kills),
                len(kills) == args.cleanup_kills),
            Row("resources left after cleanup (all kills)", data["leftovers_total"], "", "0",
                data["leftovers_total"] == 0),
            Row("most left after one kill", max((k.leftovers for k in kills), default=None),
                "", "0", all(k.leftovers == 0 for k in kills))]
    return data, rows
