"""`bench.peer_floor`, the peer bench's floor generator, against a real local core: it connects
every device over mutual TLS, publishes on its schedule and reports its phases as the peer
bench reads them; a device local core refuses ends the run, named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.fleet_provision import FLEET, provisioned_core
from fleetsim.device import IdentityStore
from fleetsim.pki import CertificateAuthority, generate_key, private_key_pem
from fleetsim.pki.certs import certificate_pem, subject_name

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 3


def _run_floor(work: Path, info_file: Path, identities: list[dict[str, str]],
               ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    info = json.loads(info_file.read_text())
    (work / "ids.json").write_text(json.dumps(identities))
    marks = work / "marks.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEER_IDENTITIES": str(work / "ids.json"),
           "PEER_CA": str(info["root_ca"]), "PEER_HOST": str(info["mqtt_host"]),
           "PEER_PORT": str(info["mqtt_port"]), "PEER_RATE": "50", "PEER_IDLE_S": "0.2",
           "PEER_TELEMETRY_S": "1.0", "PEER_INTERVAL_S": "0.25", "PEER_MARKS": str(marks)}
    done = subprocess.run([sys.executable, "-m", "bench.peer_floor"], env=env, cwd=work,
                          capture_output=True, text=True, timeout=60)
    return done, json.loads(marks.read_text())


def _identities(ids: Path) -> list[dict[str, str]]:
    return [{"name": i.thing_name, "cert": str(i.cert_path), "key": str(i.key_path)}
            for i in IdentityStore(ids, FLEET).load_all()]


def test_the_floor_runs_the_workload_and_reports_its_phases() -> None:
    with provisioned_core(DEVICES, "fleetsim-floor-") as (work, info, ids):
        done, marks = _run_floor(work, info, _identities(ids))
    assert done.returncode == 0, done.stdout + done.stderr
    assert marks["connected_count"] == DEVICES
    assert sum(marks["connects_per_s"].values()) == DEVICES
    assert (marks["test_start"] <= marks["connected"] < marks["telemetry_start"]
            < marks["telemetry_end"] <= marks["done"])
    # One message per device every 0.25 s for 1 s, each device starting at a random phase.
    assert 3 * DEVICES <= marks["sent"] <= 4 * DEVICES


def test_a_device_local_core_does_not_know_ends_the_run_named(tmp_path: Path) -> None:
    ca = CertificateAuthority.create("not a CA local core knows")
    key = generate_key("ec-p256")
    stranger = {"name": "stranger", "cert": str(tmp_path / "stranger.crt"),
                "key": str(tmp_path / "stranger.key")}
    Path(stranger["cert"]).write_bytes(certificate_pem(
        ca.issue(key.public_key(), subject_name("stranger"))))
    Path(stranger["key"]).write_bytes(private_key_pem(key))
    with provisioned_core(1, "fleetsim-floor-") as (work, info, ids):
        done, marks = _run_floor(work, info, [*_identities(ids), stranger])
    assert done.returncode == 1
    assert "stranger could not connect" in done.stderr
    assert marks["connected_count"] == 1
    assert "done" not in marks
