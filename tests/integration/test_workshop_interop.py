"""The API provisioning lab as the workshop text runs it: the AWS CLI provisions, then
mosquitto_pub publishes and mosquitto_sub (standing in for the console) receives."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import AWS, aws, aws_json
from tests.helpers import ALLOW_ALL

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not AWS.exists(), reason="AWS CLI not installed (make tools)"),
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto clients missing"),
]


def provision(core: RunningLocalCore, cwd: Path, thing: str) -> str:
    aws(core, cwd, "iot", "create-thing", "--thing-name", thing)
    out = aws_json(core, cwd, "iot", "create-keys-and-certificate", "--set-as-active",
                   "--public-key-outfile", f"{thing}.public.key",
                   "--private-key-outfile", f"{thing}.private.key",
                   "--certificate-pem-outfile", f"{thing}.certificate.pem")
    aws(core, cwd, "iot", "create-policy", "--policy-name", f"{thing}_Policy",
        "--policy-document", ALLOW_ALL)
    aws(core, cwd, "iot", "attach-policy", "--policy-name", f"{thing}_Policy",
        "--target", out["certificateArn"])
    aws(core, cwd, "iot", "attach-thing-principal", "--thing-name", thing,
        "--principal", out["certificateArn"])
    return out["certificateId"]


def tls(core: RunningLocalCore, thing: str) -> list[str]:
    return ["--cafile", str(core.root_ca), "--cert", f"{thing}.certificate.pem",
            "--key", f"{thing}.private.key", "-h", core.mqtt_host, "-p", str(core.mqtt_port),
            "--tls-version", "tlsv1.2"]


def test_cli_provisions_mosquitto_publishes_and_subscribes(core: RunningLocalCore,
                                                           tmp_path: Path) -> None:
    aws(core, tmp_path, "iot", "update-event-configurations", "--event-configurations",
        '{"THING": {"Enabled": true}}')
    provision(core, tmp_path, "lab-device")
    provision(core, tmp_path, "console")
    # stdbuf: mosquitto_sub block-buffers stdout into a pipe, and we must see its SUBACK.
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", *tls(core, "console"),
                            "-i", "console", "-v",
                            "-t", "iot/ws", "-t", "$aws/events/thing/#", "-C", "2", "-W", "30",
                            "-d"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        assert sub.stdout is not None
        lines = []
        while not any("received SUBACK" in line for line in lines):
            line = sub.stdout.readline()
            assert line, f"mosquitto_sub ended before subscribing: {lines}"
            lines.append(line)
        aws(core, tmp_path, "iot", "update-thing", "--thing-name", "lab-device",
            "--attribute-payload", '{"attributes": {"type": "ws-device"}}')
        message = json.dumps({"prov": "first", "date": time.ctime()})
        pub = subprocess.run(["mosquitto_pub", *tls(core, "lab-device"), "-q", "0",
                              "-t", "iot/ws", "-i", "lab-device", "-m", message, "-d"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert pub.returncode == 0, pub.stdout + pub.stderr
        out = sub.stdout.read()  # until mosquitto_sub exits after 2 messages (or -W 30)
    finally:
        sub.kill()
    received = [line for line in out.splitlines() if line.startswith(("iot/", "$aws/"))]
    topics = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in received}
    assert topics.get("iot/ws") == message, out
    updated = json.loads(topics["$aws/events/thing/lab-device/updated"])
    assert updated["eventType"] == "THING_EVENT" and updated["operation"] == "UPDATED"
    assert updated["attributes"] == {"type": "ws-device"}


def test_deactivated_certificate_cannot_publish(core: RunningLocalCore, tmp_path: Path) -> None:
    cert_id = provision(core, tmp_path, "soon-inactive")
    aws(core, tmp_path, "iot", "update-certificate", "--certificate-id", cert_id,
        "--new-status", "INACTIVE")
    pub = subprocess.run(["mosquitto_pub", *tls(core, "soon-inactive"), "-q", "1",
                          "-t", "iot/ws", "-i", "soon-inactive", "-m", "{}", "-d"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert pub.returncode != 0
    assert "received CONNACK" not in pub.stdout + pub.stderr
