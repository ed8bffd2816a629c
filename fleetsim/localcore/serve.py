"""`fleetsim local serve`: run local core in the foreground until stopped."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import stat
import sys
from pathlib import Path

from fleetsim.errors import UserError
from fleetsim.localcore import allocator
from fleetsim.localcore.arguments import (
    INFO_FILE,
    add_arguments,
    private_directory,
    resolve_environment,
)
from fleetsim.localcore.ca import ROOT_CA_FILE
from fleetsim.localcore.core import Endpoints, LocalCore, LocalCoreConfig
from fleetsim.localcore.statelock import hold_state_dir
from fleetsim.pki import load_certificate, load_private_key


def write_info(state_dir: Path, endpoints: Endpoints, region: str) -> None:
    info = {"pid": os.getpid(), "api_url": endpoints.api_url, "mqtt_host": endpoints.mqtt_host,
            "mqtt_port": endpoints.mqtt_port, "root_ca": str(endpoints.root_ca.resolve()),
            "region": region}
    tmp = state_dir / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(state_dir / INFO_FILE)


def check_pem_files(state_dir: Path) -> None:
    """UserError naming a key or certificate of the state dir that cannot be read (a
    truncated or garbled file), before local core trips over it. Only pairs that are both
    there are used (a missing one makes local core issue the pair again)."""
    for cert, key in ((ROOT_CA_FILE, "root-ca.key"), ("server.pem", "server.key")):
        if not ((state_dir / cert).exists() and (state_dir / key).exists()):
            continue
        for name, load, what in ((key, load_private_key, "private key"),
                                 (cert, load_certificate, "certificate")):
            path = state_dir / name
            try:
                load(path.read_bytes())
            except (ValueError, TypeError, OSError) as e:
                raise UserError(f"{path} is not a readable PEM {what} ({type(e).__name__}): "
                                "restore it, or move the state directory away to start "
                                "afresh (what local core held is then lost)") from e


def _narrow_log_file() -> None:
    """When stderr is a log file (a run starts local core with its output in
    `localcore.log`), make it 0600: it names clients and certificates."""
    try:
        fd = sys.stderr.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
    except (OSError, ValueError):
        pass


async def serve(args: argparse.Namespace) -> None:
    private_directory(args.state_dir)
    if args.state_dir.parent.name == ".fleetsim":  # the default .fleetsim/localcore
        os.chmod(args.state_dir.parent, 0o700)
    lock = hold_state_dir(args.state_dir)  # noqa: F841 -- held until this process exits
    check_pem_files(args.state_dir)
    core = LocalCore(LocalCoreConfig(
        state_dir=args.state_dir, api_port=args.api_port, mqtt_port=args.mqtt_port,
        region=args.region, keys_and_certificate_key_type=args.keys_and_certificate_key_type,
        allowed_hosts=tuple(args.allow_host), credentials=args.credentials))
    endpoints = await core.start()
    # What start-up made lives as long as local core: out of the collector's way (frozen by
    # `run_async`'s policy, `collector`), so full collections walk only what came since.
    gc.collect()
    write_info(args.state_dir, endpoints, args.region)
    print("local core ready", flush=True)
    print(f"  API       {endpoints.api_url}   (use as --endpoint-url or AWS_ENDPOINT_URL)")
    print(f"  MQTT      {endpoints.mqtt_host}:{endpoints.mqtt_port}   (mutual TLS, region "
          f"{args.region})")
    print(f"  root CA   {endpoints.root_ca}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        (args.state_dir / INFO_FILE).unlink(missing_ok=True)
        await core.stop()


def run(args: argparse.Namespace) -> int:
    from fleetsim.runtime import raise_fd_limit, run_async

    allocator.reexec_if_needed()  # before anything is opened: see allocator.py
    raise_fd_limit()
    try:
        resolve_environment(args)
        # force: `fleetsim` configured logging for itself before calling this; local core's
        # level is its own (--log-level), INFO by default.
        logging.basicConfig(level=args.log_level, stream=sys.stderr, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        _narrow_log_file()
        run_async(serve(args))
    except UserError as e:
        print(f"fleetsim: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetsim local serve")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
