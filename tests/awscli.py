"""Running the AWS CLI (installed in .tools by `make tools`) against a local core."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, aws_env

AWS = ROOT / ".tools" / "bin" / "aws"


def aws(core: RunningLocalCore, cwd: Path, *args: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AWS), *args], env=aws_env(core), cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=check)


def aws_json(core: RunningLocalCore, cwd: Path, *args: str) -> Any:
    out = aws(core, cwd, *args).stdout
    return json.loads(out) if out.strip() else None
