"""`fleetsim run / validate / local serve|start|stop|status / report / cleanup`: arguments only."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fleetsim.errors import ScenarioInvalid, UserError

STATE_DIR = Path(".fleetsim")


def _validate(args: argparse.Namespace) -> int:
    from fleetsim.engine.labs import load_run
    from fleetsim.scenario.labs import Labs

    scenario = load_run(args.file, devices=args.devices)
    fleets = scenario.fleets
    labs = f"{len(scenario.labs)} labs, " if isinstance(scenario, Labs) else ""
    print(f"{args.file}: ok ({labs}{len(scenario.steps)} steps, {len(fleets)} fleets, "
          f"{sum(f.count for f in fleets)} devices, target {scenario.target.kind})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from fleetsim.commands.run import run_command
    from fleetsim.localcore.arguments import private_directory

    if args.ray is not None and args.workers is None:
        args.workers = 2
    if args.workers is not None and args.ray is None:
        raise UserError("--workers splits the run across Ray processes: add --ray")
    if args.workers is not None and args.shard is not None:
        raise UserError("--shard and --ray both split the fleets: give one of them")
    if args.metrics_host is not None and args.metrics_port is None:
        raise UserError("--metrics-host is where --metrics-port listens: add --metrics-port")
    private_directory(args.state_dir)  # it holds private keys
    return run_command(args)


def _cleanup(args: argparse.Namespace) -> int:
    from fleetsim.commands.cleanup import cleanup_command

    return cleanup_command(args)


def _report(args: argparse.Namespace) -> int:
    from fleetsim.commands.report import report_command

    return report_command(args)


def _serve(args: argparse.Namespace) -> int:
    from fleetsim.localcore.serve import run

    return run(args)


def _local(args: argparse.Namespace) -> int:
    from fleetsim.commands import local

    command = {"start": local.start_command, "stop": local.stop_command,
               "status": local.status_command}[args.local_command]
    return command(args)


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 2/4)") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"shard {text}: K must be between 1 and N")
    return k, n


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} workers: give at least 1")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import fleetsim

    try:
        return version("fleetsim")
    except PackageNotFoundError:
        return fleetsim.__version__


def build_parser() -> argparse.ArgumentParser:
    from fleetsim.localcore.arguments import DEFAULT_STATE_DIR as DEFAULT_LOCAL_STATE_DIR
    from fleetsim.localcore.arguments import add_arguments as add_serve_arguments
    from fleetsim.localcore.arguments import parse_port, port_arguments, state_dir_path

    parser = argparse.ArgumentParser(
        prog="fleetsim",
        description="Simulate fleets of AWS IoT devices against AWS or an embedded local core.")
    parser.add_argument("--version", action="version", version=f"fleetsim {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a scenario file; problems as FILE:LINE:COL")
    p.add_argument("file", type=Path)
    p.add_argument("--devices", type=int, help="override every fleet's device count")
    p.set_defaults(func=_validate)

    p = sub.add_parser("run", help="run a scenario file")
    p.add_argument("file", type=Path)
    p.add_argument("--devices", type=int, help="override every fleet's device count")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    p.add_argument("--timeline", type=Path, metavar="CSV",
                   help="write per-second throughput as CSV")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="write the report as one self-contained HTML page (tables, plots, "
                        "the scenario)")
    p.add_argument("--keep", action="store_true",
                   help="keep what the run created (remove later with `fleetsim cleanup`)")
    p.add_argument("--plan", action="store_true",
                   help="print what the run would create, change (drift) and remove, "
                        "without doing it (only Describe/List/Get calls)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="devices handled at once by each step (default 64)")
    p.add_argument("--shard", type=_shard, metavar="K/N",
                   help="run only the K-th of N slices of every fleet (names stay global), "
                        "so several processes can split one fleet; merge with `report`")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on a Ray cluster (its address, e.g. 10.0.0.5:6379; none: a local "
                        "cluster started for the run), in --workers processes; needs the "
                        "'ray' extra")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="with --ray: processes that split every fleet (default 2)")
    p.add_argument("--metrics-port", type=parse_port, metavar="PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics while the run "
                        "goes (0: a free port, printed)")
    p.add_argument("--metrics-host", metavar="HOST",
                   help="the address --metrics-port listens on (default 127.0.0.1)")
    p.add_argument("--state-dir", type=state_dir_path, default=STATE_DIR,
                   help=f"where runs, identities and local core live (default {STATE_DIR})")
    port_arguments(p, when=" when the run starts local core")
    p.set_defaults(func=_run)

    p = sub.add_parser("cleanup", help="remove what earlier runs created (from their journals), "
                                       "or what is named with a prefix")
    p.add_argument("--run", dest="run_id", help="only this run id (default: every pending run)")
    p.add_argument("--all", action="store_true",
                   help="every pending run's journal, persistent fleets' included (the default "
                        "without --run or --prefix; with --prefix: both)")
    p.add_argument("--prefix", metavar="P",
                   help="also remove every resource of the account whose name starts with P, "
                        "journaled or not (alone: only those; see --target)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be removed, by kind; change nothing")
    p.add_argument("--no-wait", action="store_true",
                   help="do not wait for what AWS deletes only later (a thing type, 5 minutes "
                        "after its deprecation): say when, and keep the run pending")
    p.add_argument("--target", choices=("local", "aws"), default="local",
                   help="with --prefix: where to look (default local core of --state-dir)")
    p.add_argument("--region", help="with --prefix --target aws: the region (default: the "
                                    "AWS configuration's)")
    p.add_argument("--profile", help="with --prefix --target aws: the AWS profile")
    p.add_argument("--state-dir", type=state_dir_path, default=STATE_DIR)
    p.set_defaults(func=_cleanup)

    p = sub.add_parser("report", help="print, compare or merge JSON summaries")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--merge", action="store_true",
                   help="merge the summaries (shards of one run) into one; without it, "
                        "several files are compared side by side")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the merged summary")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="write the report (one file) or the comparison (several; the first "
                        "is the baseline) as one self-contained HTML page")
    p.set_defaults(func=_report)

    local = sub.add_parser("local", help="local core, the embedded stand-in for AWS IoT")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    p = local_sub.add_parser("serve", help="run local core in the foreground")
    add_serve_arguments(p)
    p.set_defaults(func=_serve)
    p = local_sub.add_parser("start", help="start local core in the background (returns when "
                                           "ready; runs on the same state dir reuse it)")
    add_serve_arguments(p)
    p.set_defaults(func=_local)
    for name, text in (("stop", "stop the local core of a state dir"),
                       ("status", "say whether local core runs, and its endpoints")):
        p = local_sub.add_parser(name, help=text)
        p.add_argument("--state-dir", type=Path, default=DEFAULT_LOCAL_STATE_DIR)
        p.set_defaults(func=_local)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ScenarioInvalid as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return e.exit_code
    except UserError as e:
        print(f"fleetsim: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("fleetsim: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        sentence = _environment_error(e)
        if sentence is None:
            raise
        print(f"fleetsim: {sentence}", file=sys.stderr)
        return 1


def _environment_error(e: Exception) -> str | None:
    """One sentence for what the environment got wrong (a file that cannot be written, an AWS
    profile or credentials that do not exist); None for a bug, which keeps its traceback."""
    if type(e).__module__.startswith("botocore"):  # ProfileNotFound, NoCredentialsError, ...
        return f"AWS: {e}"
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return None


if __name__ == "__main__":
    sys.exit(main())
