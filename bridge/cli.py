"""Command line: argument parsing only. Each command hands its arguments to the module that owns it.

Imports are lazy so `meisa-bridge --help` stays fast and a command pulls in only what it uses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bridge import __version__

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
examples:
  meisa-bridge validate --rules examples/rules.yaml
  meisa-bridge plan --rules examples/rules.yaml --events examples/events.jsonl --format table
  meisa-bridge sandbox --port 8080
  MEISA_API_KEY=... meisa-bridge run --config bridge.yaml
  meisa-bridge replay --config bridge.yaml --from earliest --dry-run
  meisa-bridge dlq list --config bridge.yaml
"""


def _run(args: argparse.Namespace) -> int:
    from bridge.pipeline.runner import run_command

    return run_command(args)


def _validate(args: argparse.Namespace) -> int:
    from bridge.rules.commands import validate_command

    return validate_command(args)


def _plan(args: argparse.Namespace) -> int:
    from bridge.rules.commands import plan_command

    return plan_command(args)


def _schema(args: argparse.Namespace) -> int:
    from bridge.rules.commands import schema_command

    return schema_command(args)


def _sandbox(args: argparse.Namespace) -> int:
    from bridge.sandbox.server import sandbox_command

    return sandbox_command(args)


def _replay(args: argparse.Namespace) -> int:
    from bridge.replay import replay_command

    return replay_command(args)


def _dlq(args: argparse.Namespace) -> int:
    from bridge.dlq_admin import dlq_command

    return dlq_command(args)


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="consume Kafka and drive Meisa (the service)")
    p.add_argument("--config", required=True, help="deployment YAML (kafka, topics, meisa, rules)")
    p.set_defaults(handler=_run)


def _add_rules_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check a rules or config file; list every error")
    p.add_argument("--rules", required=True, nargs="+", metavar="FILE", help="rules/config YAML")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("plan", help="show the exact Meisa calls the rules make for given events")
    p.add_argument("--rules", required=True, metavar="FILE", help="rules or config YAML")
    p.add_argument("--events", required=True, metavar="FILE", help="JSON Lines, '-' for stdin")
    p.add_argument("--format", choices=["json", "table"], default="json")
    p.add_argument("--coalesce", action="store_true", help="merge adjacent upserts per contact")
    p.add_argument("--topic", default="events", help="topic for events given without one")
    p.set_defaults(handler=_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of the rules file (for editors)")
    p.set_defaults(handler=_schema)


def _add_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sandbox", help="run a local Meisa emulator that follows the API spec")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--config", default=None, help="sandbox YAML: keys, triggers, sequences")
    p.set_defaults(handler=_sandbox)


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="bounded replay / backfill with its own consumer group")
    p.add_argument("--config", required=True)
    p.add_argument("--from", dest="from_", required=True, metavar="TIME|earliest")
    p.add_argument("--to", default="now", metavar="TIME|now")
    p.add_argument("--topics", nargs="+", default=None)
    p.add_argument(
        "--dry-run", action="store_true", help="read and fold, print the plan, send nothing"
    )
    p.add_argument(
        "--state-dir", default=None, help="where run state lives (default .meisa-bridge/replay)"
    )
    p.add_argument("--run-name", default=None, help="names the state file and the consumer group")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=_replay)


def _add_dlq(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dlq", help="inspect and redrive the dead-letter topic")
    p.add_argument("action", choices=["list", "show", "redrive"])
    p.add_argument("--config", required=True)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--partition", type=int, default=None, help="DLQ partition (show; filter)")
    p.add_argument("--offset", type=int, default=None, help="DLQ offset (show)")
    p.add_argument("--offsets", default=None, metavar="A-B", help="DLQ offset range, inclusive")
    p.add_argument("--error-class", default=None, help="e.g. MappingError (subclasses match)")
    p.add_argument("--rule", default=None)
    p.add_argument("--origin-topic", default=None)
    p.add_argument("--all", action="store_true", help="list: include redriven records")
    p.add_argument("--reveal", action="store_true", help="show: do not mask email addresses")
    p.add_argument("--dry-run", action="store_true", help="redrive: map and print, send nothing")
    p.set_defaults(handler=_dlq)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meisa-bridge",
        description="Drive Meisa lifecycle email from the events you publish to Apache Kafka.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meisa-bridge {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_run(sub)
    _add_rules_commands(sub)
    _add_sandbox(sub)
    _add_replay(sub)
    _add_dlq(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
