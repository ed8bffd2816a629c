"""`fleetsim local serve|start` and `fleetsim run`'s arguments for local core, and the name of
the file a running local core describes itself in: all a command line needs, without local
core's own modules (a run that starts local core in its own process imports none of them)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fleetsim.errors import UserError
from fleetsim.localcore.config import DEFAULT_API_PORT, DEFAULT_MQTT_PORT, DEFAULT_REGION

DEFAULT_STATE_DIR = Path(".fleetsim/localcore")
INFO_FILE = "localcore.json"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
KEY_TYPES = ("rsa-2048", "ec-p256")
API_PORT_ENV, MQTT_PORT_ENV = "FLEETSIM_LOCAL_API_PORT", "FLEETSIM_LOCAL_MQTT_PORT"


def parse_port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535; for argparse `type=`."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; "
                                         "0 = any free port)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range: a port is 0-65535 "
                                         "(0 = any free port)")
    return port


def state_dir_path(text: str) -> Path:
    """A directory that is or will be fleetsim's; for argparse `type=`."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    return path


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        raise UserError(f"${name} is {value!r}; it must be one of {', '.join(choices)}")
    return value


def _env_port(name: str, default: int) -> int:
    try:
        return parse_port(os.environ.get(name, str(default)))
    except argparse.ArgumentTypeError as e:
        raise UserError(f"${name}: {e}") from None


def port_arguments(parser: argparse.ArgumentParser, *, when: str = "") -> None:
    """`--api-port` and `--mqtt-port` (None when not given: then the environment or the
    default applies, see `resolve_environment`)."""
    parser.add_argument("--api-port", type=parse_port,
                        help=f"HTTP port of the AWS API{when} (default {DEFAULT_API_PORT} or "
                             f"${API_PORT_ENV}; 0 = any free port)")
    parser.add_argument("--mqtt-port", type=parse_port,
                        help=f"MQTT over TLS port{when} (default {DEFAULT_MQTT_PORT} or "
                             f"${MQTT_PORT_ENV}; 0 = any free port)")


def parse_credentials(text: str) -> dict[str, str]:
    """`KEY:SECRET[,KEY:SECRET...]` as {key: secret}; ValueError naming what is wrong."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, secret = item.partition(":")
        if not sep or not key or not secret:
            raise ValueError(f"'{item}' is not KEY:SECRET")
        out[key] = secret
    return out


def _credentials(text: str) -> dict[str, str]:
    try:
        return parse_credentials(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}: give KEY:SECRET[,KEY:SECRET...]") from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=state_dir_path, default=DEFAULT_STATE_DIR,
                        help="where state (SQLite), the root CA and keys live "
                             f"(default {DEFAULT_STATE_DIR})")
    port_arguments(parser)
    parser.add_argument("--region",
                        help=f"the region the MQTT endpoint serves (default {DEFAULT_REGION} or "
                             "$FLEETSIM_LOCAL_REGION); the API serves every region, each call "
                             "the one its credential scope names")
    parser.add_argument("--log-level", choices=LOG_LEVELS,
                        help="what local core logs (default INFO or $FLEETSIM_LOCAL_LOG_LEVEL: "
                             "refused connections and denied publishes, with client id and "
                             "certificate id)")
    parser.add_argument("--keys-and-certificate-key-type", choices=KEY_TYPES,
                        help="key create-keys-and-certificate makes (default rsa-2048, as AWS; "
                             "or $FLEETSIM_LOCAL_KEY_TYPE)")
    parser.add_argument("--allow-host", action="append", metavar="NAME",
                        default=[h for h in os.environ.get("FLEETSIM_LOCAL_ALLOW_HOSTS",
                                                           "").split(",") if h],
                        help="a Host name the API answers besides 127.0.0.1, localhost and ::1 "
                             "(repeatable; or $FLEETSIM_LOCAL_ALLOW_HOSTS, comma-separated)")
    parser.add_argument("--credentials", type=_credentials, metavar="KEY:SECRET",
                        default=os.environ.get("FLEETSIM_LOCAL_CREDENTIALS", ""),
                        help="verify each API request's SigV4 signature against these "
                             "credentials (KEY:SECRET[,KEY:SECRET]; or "
                             "$FLEETSIM_LOCAL_CREDENTIALS); default: signatures are not checked")


def resolve_environment(args: argparse.Namespace) -> None:
    """Fill what the command line left out from FLEETSIM_LOCAL_* or the defaults; UserError
    names a variable whose value is not valid."""
    if args.api_port is None:
        args.api_port = _env_port(API_PORT_ENV, DEFAULT_API_PORT)
    if args.mqtt_port is None:
        args.mqtt_port = _env_port(MQTT_PORT_ENV, DEFAULT_MQTT_PORT)
    if args.region is None:
        args.region = os.environ.get("FLEETSIM_LOCAL_REGION", DEFAULT_REGION)
    if args.log_level is None:
        args.log_level = _env_choice("FLEETSIM_LOCAL_LOG_LEVEL", "INFO", LOG_LEVELS)
    if args.keys_and_certificate_key_type is None:
        args.keys_and_certificate_key_type = _env_choice("FLEETSIM_LOCAL_KEY_TYPE", "rsa-2048",
                                                         KEY_TYPES)


def private_directory(path: Path) -> None:
    """Create `path` (and missing parents) readable by the owner only (0700); an existing
    directory fleetsim made is narrowed to 0700 too."""
    for directory in [*reversed(path.parents[:len(path.parts) - 1]), path]:
        if not directory.exists():
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    os.chmod(path, 0o700)
