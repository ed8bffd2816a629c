"""Function code on disk: each deployment package once, by its SHA-256, as
`<state>/lambda/zips/<sha256>.zip` (written and fsynced before the function's row commits), and
unpacked at first use into `<state>/lambda/tasks/<sha256>/` (the `/var/task` of its execution
environments). Zip packages up to Lambda's 50 MB for a direct upload ("Lambda quotas")."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.functions.settings import invalid_parameter

MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024


def check_zip(data: bytes) -> None:
    """InvalidParameterValueException for what Lambda could not unzip."""
    if len(data) > MAX_ZIP_BYTES:
        raise AwsError("RequestEntityTooLargeException", "Request must be smaller than "
                       f"{MAX_ZIP_BYTES} bytes for the CreateFunction operation", status=413)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            size = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, ValueError):
        raise invalid_parameter("Could not unzip uploaded file. Please check your file, then "
                                "try to upload again.") from None
    if size > MAX_UNZIPPED_BYTES:
        raise invalid_parameter(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} "
                                "bytes")


class CodeStore:
    def __init__(self, root: Path):
        # Absolute: a worker runs in its task folder (cwd) with LAMBDA_TASK_ROOT on sys.path,
        # and GetFunction's Code.Location is a file:// URL; both need the full path when the
        # state dir is relative (`fleetsim run`'s default .fleetsim).
        root = root.resolve()
        self.root = root
        self.zips = root / "zips"
        self.tasks = root / "tasks"

    def put(self, data: bytes) -> str:
        """Store a package; its SHA-256 in hex."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.zips / f"{digest}.zip"
        if not path.exists():
            self.zips.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.zips, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return digest

    def task_dir(self, digest: str) -> Path:
        """The package unpacked (once; later calls reuse it)."""
        target = self.tasks / digest
        if target.is_dir():
            return target
        self.tasks.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.tasks, prefix=".unpack-"))
        with zipfile.ZipFile(self.zips / f"{digest}.zip") as z:
            for info in z.infolist():
                # entries cannot leave the folder (no absolute paths, no `..`)
                dest = (tmp / info.filename).resolve()
                if not dest.is_relative_to(tmp.resolve()):
                    continue
                z.extract(info, tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # unpacked meanwhile by another caller
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.zips / f"{digest}.zip").unlink()
        shutil.rmtree(self.tasks / digest, ignore_errors=True)
