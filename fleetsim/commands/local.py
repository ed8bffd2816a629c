"""`fleetsim local start / stop / status`: local core in the background, shared by runs.

A local core started here is not tied to the life of the shell that started it (unlike one a
run starts for itself): runs on the same state dir find it and reuse it, and leave it
running."""

from __future__ import annotations

import argparse
import os
import signal
import time

from fleetsim.localcore.launcher import endpoints_text, running_info, spawn_local_core

STOP_TIMEOUT_S = 15.0


def serve_options(args: argparse.Namespace) -> list[str]:
    """The `local serve` options given to `local start`, to pass on; what was not given, local
    core reads from FLEETSIM_LOCAL_* (it inherits the environment) or its defaults."""
    options: list[str] = []
    for option, value in (("--region", args.region), ("--log-level", args.log_level),
                          ("--keys-and-certificate-key-type",
                           args.keys_and_certificate_key_type)):
        if value is not None:
            options += [option, value]
    for host in args.allow_host:
        options += ["--allow-host", host]
    return options


def start_command(args: argparse.Namespace) -> int:
    info = running_info(args.state_dir)
    if info is not None:
        print(f"local core is already running on {args.state_dir}\n{endpoints_text(info)}")
        return 0
    env = None
    if args.credentials:  # through the environment: a command line is visible to every user
        env = {"FLEETSIM_LOCAL_CREDENTIALS": ",".join(f"{k}:{v}"
                                                      for k, v in args.credentials.items())}
    core = spawn_local_core(args.state_dir, args.state_dir / "localcore.log",
                            api_port=args.api_port, mqtt_port=args.mqtt_port,
                            extra_args=serve_options(args), env=env, new_session=True)
    print(f"local core started on {args.state_dir} (log: {args.state_dir / 'localcore.log'}; "
          f"stop it with `fleetsim local stop`)\n{endpoints_text(core.info)}")
    return 0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (our own child, not yet reaped) is gone too
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def stop_command(args: argparse.Namespace) -> int:
    info = running_info(args.state_dir)
    if info is None:
        print(f"local core is not running on {args.state_dir}")
        return 0
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    print(f"local core stopped (pid {pid})")
    return 0


def status_command(args: argparse.Namespace) -> int:
    info = running_info(args.state_dir)
    if info is None:
        print(f"local core is not running on {args.state_dir}")
        return 3  # as `systemctl status` says "not running"
    print(f"local core is running on {args.state_dir}\n{endpoints_text(info)}")
    return 0
