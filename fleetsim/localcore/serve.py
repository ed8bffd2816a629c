"""`fleetsim local serve`: run local core in the foreground until stopped."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from fleetsim.errors import UserError
from fleetsim.localcore.core import (
    DEFAULT_API_PORT,
    DEFAULT_MQTT_PORT,
    DEFAULT_REGION,
    Endpoints,
    LocalCore,
    LocalCoreConfig,
)
from fleetsim.localcore.statelock import hold_state_dir

DEFAULT_STATE_DIR = Path(".fleetsim/localcore")
INFO_FILE = "localcore.json"


def _port_default(env: str, fallback: int) -> int:
    return int(os.environ.get(env, fallback))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="where state (SQLite), the root CA and keys live "
                             f"(default {DEFAULT_STATE_DIR})")
    parser.add_argument("--api-port", type=int,
                        default=_port_default("FLEETSIM_LOCAL_API_PORT", DEFAULT_API_PORT),
                        help=f"HTTP port of the AWS API (default {DEFAULT_API_PORT} or "
                             "$FLEETSIM_LOCAL_API_PORT; 0 = any free port)")
    parser.add_argument("--mqtt-port", type=int,
                        default=_port_default("FLEETSIM_LOCAL_MQTT_PORT", DEFAULT_MQTT_PORT),
                        help=f"MQTT over TLS port (default {DEFAULT_MQTT_PORT} or "
                             "$FLEETSIM_LOCAL_MQTT_PORT; 0 = any free port)")
    parser.add_argument("--region", default=os.environ.get("FLEETSIM_LOCAL_REGION", DEFAULT_REGION),
                        help=f"the region the MQTT endpoint serves (default {DEFAULT_REGION} or "
                             "$FLEETSIM_LOCAL_REGION); the API serves every region, each call "
                             "the one its credential scope names")
    parser.add_argument("--log-level", default=os.environ.get("FLEETSIM_LOCAL_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="what local core logs (default INFO: refused connections and "
                             "denied publishes, with client id and certificate id)")
    parser.add_argument("--keys-and-certificate-key-type", choices=["rsa-2048", "ec-p256"],
                        default=os.environ.get("FLEETSIM_LOCAL_KEY_TYPE", "rsa-2048"),
                        help="key create-keys-and-certificate makes (default rsa-2048, as AWS; "
                             "or $FLEETSIM_LOCAL_KEY_TYPE)")


def write_info(state_dir: Path, endpoints: Endpoints, region: str) -> None:
    info = {"pid": os.getpid(), "api_url": endpoints.api_url, "mqtt_host": endpoints.mqtt_host,
            "mqtt_port": endpoints.mqtt_port, "root_ca": str(endpoints.root_ca.resolve()),
            "region": region}
    tmp = state_dir / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(state_dir / INFO_FILE)


async def serve(args: argparse.Namespace) -> None:
    lock = hold_state_dir(args.state_dir)  # noqa: F841 -- held until this process exits
    core = LocalCore(LocalCoreConfig(
        state_dir=args.state_dir, api_port=args.api_port, mqtt_port=args.mqtt_port,
        region=args.region, keys_and_certificate_key_type=args.keys_and_certificate_key_type))
    endpoints = await core.start()
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

    raise_fd_limit()
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
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
