"""Command line: argument parsing only. Each command hands its arguments to the module that owns it.

Imports are lazy so `meisa-bridge --help` stays fast and a command pulls in only what it uses.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from bridge import __version__
from bridge.exitcodes import ExitCode, exit_help

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
examples:
  meisa-bridge validate --rules examples/rules.yaml
  meisa-bridge plan --rules examples/rules.yaml --events examples/events.jsonl --format table
  meisa-bridge test examples/
  meisa-bridge sandbox --port 8080
  MEISA_API_KEY=... meisa-bridge run --config bridge.yaml
  meisa-bridge replay --config bridge.yaml --from earliest --dry-run
  meisa-bridge dlq list --config bridge.yaml
  meisa-bridge status --config bridge.yaml
"""


def _run(args: argparse.Namespace) -> int:
    # Before the heavy imports: a SIGTERM from here on is a clean stop, never a kill.
    from bridge.signals import remember_stop_signals

    remember_stop_signals()
    from bridge.pipeline.runner import run_command

    given = [f for f in ("shadow_group", "shadow_output", "shadow_from") if getattr(args, f)]
    if given and not args.shadow:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        print(f"meisa-bridge run: {flags} only apply with --shadow", file=sys.stderr)
        return ExitCode.REFUSED
    return run_command(args)


def _validate(args: argparse.Namespace) -> int:
    from bridge.rules.commands import validate_command

    return validate_command(args)


def _plan(args: argparse.Namespace) -> int:
    from bridge.rules.commands import plan_command

    return plan_command(args)


def _test(args: argparse.Namespace) -> int:
    from bridge.rules.testcommand import test_command

    return test_command(args)


def _schema(args: argparse.Namespace) -> int:
    from bridge.rules.commands import schema_command

    return schema_command(args)


def _config_doc(args: argparse.Namespace) -> int:
    from bridge.configdoc import config_doc_command

    return config_doc_command(args)


def _sandbox(args: argparse.Namespace) -> int:
    from bridge.sandbox.server import sandbox_command

    return sandbox_command(args)


def _replay(args: argparse.Namespace) -> int:
    from bridge.replay import replay_command

    return replay_command(args)


def _dlq(args: argparse.Namespace) -> int:
    from bridge.dlq_admin import dlq_command

    return dlq_command(args)


def _status(args: argparse.Namespace) -> int:
    from bridge.status import status_command

    return status_command(args)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, shows examples and, where any, exit codes."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(
        sub,
        "run",
        help="consume Kafka and drive Meisa (the service)",
        description="Consume the configured topics, map each event through the rules and make\n"
        "the Meisa calls; offsets are committed only after the calls succeed.\n"
        "Start-up checks Meisa (GET /ping/) and the key's scopes against the rules.\n\n"
        + exit_help(
            {
                ExitCode.OK: "stopped (SIGTERM/SIGINT)",
                ExitCode.FAILED: "stopped, but the Kafka consumer froze while closing\n"
                "(after the final commit; every thread's stack is on stderr)",
                ExitCode.REFUSED: "refused to start (config, Meisa or Kafka unreachable,\n"
                "missing scopes)",
                ExitCode.HALTED: "halted (401/403, DLQ breaker, a fatal Kafka error, ...)",
            }
        ),
        examples="  MEISA_API_KEY=meisa_live_... meisa-bridge run --config bridge.yaml\n"
        "  meisa-bridge run --config new-rules-bridge.yaml --shadow --shadow-output calls.jsonl\n",
    )
    p.add_argument("--config", required=True, help="deployment YAML (kafka, topics, meisa, rules)")
    p.add_argument(
        "--shadow",
        action="store_true",
        help="record the calls the rules would make instead of making them (own consumer group)",
    )
    p.add_argument(
        "--shadow-group", default=None, metavar="GROUP", help="default: <group.id>.shadow"
    )
    p.add_argument(
        "--shadow-output",
        default=None,
        metavar="FILE",
        help="append calls as JSON Lines (- for stdout)",
    )
    p.add_argument(
        "--shadow-from",
        choices=["latest", "earliest"],
        default=None,
        help="where a new shadow group starts (default: latest)",
    )
    p.set_defaults(handler=_run)


def _add_rules_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(
        sub,
        "validate",
        help="check a rules or config file; list every error",
        description="Load rules or deployment config files and list every problem as\n"
        "FILE:LINE: rule 'NAME': FIELD: message. Unset ${VAR}s count as empty.\n\n"
        + exit_help({ExitCode.OK: "all files ok", ExitCode.FAILED: "errors were listed"}),
        examples="  meisa-bridge validate --rules rules.yaml\n"
        "  meisa-bridge validate --rules bridge.yaml other-rules.yaml\n",
    )
    p.add_argument("--rules", required=True, nargs="+", metavar="FILE", help="rules/config YAML")
    p.set_defaults(handler=_validate)

    p = _command(
        sub,
        "plan",
        help="show the exact Meisa calls the rules make for given events",
        description="Map events from a JSON Lines file through the rules, without Kafka or\n"
        "Meisa, and print one line per call (or per event that makes none, with its\n"
        "outcome: no_match, decode_error, map_error). A line is an event object, or a\n"
        'raw message {"topic", "partition", "offset", "key", "headers", "value"}.\n\n'
        + exit_help(
            {
                ExitCode.OK: "planned (bad events are reported, not fatal)",
                ExitCode.REFUSED: "bad rules or files",
            }
        ),
        examples="  meisa-bridge plan --rules rules.yaml --events sample.jsonl\n"
        "  meisa-bridge plan --rules bridge.yaml --events sample.jsonl --format table\n"
        "  meisa-bridge plan --rules rules.yaml --events - --coalesce < backlog.jsonl\n",
    )
    p.add_argument("--rules", required=True, metavar="FILE", help="rules or config YAML")
    p.add_argument("--events", required=True, metavar="FILE", help="JSON Lines, '-' for stdin")
    p.add_argument(
        "--format", choices=["json", "table"], default="json", help="output (default: json)"
    )
    p.add_argument(
        "--coalesce",
        action="store_true",
        help="the calls after coalescing: merged upserts, folded tags, bulk enrolments",
    )
    p.add_argument("--topic", default="events", help="topic for events given without one")
    p.set_defaults(handler=_plan)

    p = _command(
        sub,
        "test",
        help="run rule tests (*.test.yaml): events in, expected calls or outcomes out",
        description="Run rule test files: each test feeds events (or raw messages) through the\n"
        "rules, as the bridge would, and compares the calls with the expected ones\n"
        "(exactly, or a subset with matchers) or the outcome (no_match, decode_error,\n"
        "map_error, stale). A PATH is a file, a directory (searched for *.test.yaml)\n"
        "or a glob such as 'rules/**/*.test.yaml'.\n\n"
        + exit_help(
            {
                ExitCode.OK: "all passed",
                ExitCode.FAILED: "a test failed, a file has errors, or no tests found",
            }
        ),
        examples="  meisa-bridge test examples/\n"
        "  meisa-bridge test 'rules/**/*.test.yaml' --format junit --output rules-junit.xml\n"
        "  meisa-bridge test --rules new-rules.yaml rules.test.yaml\n",
    )
    p.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="default: .")
    p.add_argument(
        "--rules", default=None, metavar="FILE", help="test this rules/config file instead"
    )
    p.add_argument("--format", choices=["text", "junit"], default="text")
    p.add_argument("--output", default=None, metavar="FILE", help="write the report here")
    p.set_defaults(handler=_test)

    p = _command(
        sub,
        "schema",
        help="print the JSON Schema of the rules file (for editors)",
        description="Print the JSON Schema (draft 2020-12) of rules and config files, for\n"
        "editors that validate and complete YAML.",
        examples="  meisa-bridge schema > meisa-bridge.schema.json\n"
        "  # then, first line of rules.yaml:\n"
        "  # yaml-language-server: $schema=./meisa-bridge.schema.json\n",
    )
    p.set_defaults(handler=_schema)

    p = _command(
        sub,
        "config-doc",
        help="print the configuration reference (docs/configuration.md)",
        description="Render the configuration reference from the settings models: every\n"
        "setting with its type, default and meaning.\n\n"
        + exit_help(
            {
                ExitCode.OK: "written (or current)",
                ExitCode.FAILED: "--check found the file out of date",
            }
        ),
        examples="  meisa-bridge config-doc --output docs/configuration.md\n"
        "  meisa-bridge config-doc --check docs/configuration.md\n",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--output", default=None, metavar="FILE", help="write it here")
    target.add_argument(
        "--check", default=None, metavar="FILE", help="exit 1 if FILE is not current"
    )
    p.set_defaults(handler=_config_doc)


def _add_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(
        sub,
        "sandbox",
        help="run a local Meisa emulator that follows the API spec",
        description="Serve a local Meisa under /api/v1 and an inspection and control API under\n"
        "/_sandbox/; prints its URL and API keys at start-up. Stop it with Ctrl-C.",
        examples="  meisa-bridge sandbox --port 8080\n"
        "  meisa-bridge sandbox --config sandbox.yaml\n"
        "  curl -s localhost:8080/_sandbox/requests\n",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    p.add_argument("--config", default=None, help="sandbox YAML: keys, triggers, sequences")
    p.set_defaults(handler=_sandbox)


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(
        sub,
        "replay",
        help="bounded replay / backfill with its own consumer group",
        description="Read a bounded range of the topics and bring Meisa to the state it\n"
        "describes, about one call per contact; resumable, never touches the live group.\n\n"
        + exit_help(
            {
                ExitCode.OK: "done",
                ExitCode.FAILED: "some calls rejected",
                ExitCode.REFUSED: "usage or config error",
                ExitCode.HALTED: "halted",
            }
        ),
        examples="  meisa-bridge replay --config bridge.yaml --from earliest --dry-run\n"
        "  meisa-bridge replay --config bridge.yaml --from 7d --topics app.users\n",
    )
    p.add_argument("--config", required=True, help="deployment YAML")
    p.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="TIME|earliest",
        help="earliest, an ISO 8601 time, or an age such as 7d or 12h",
    )
    p.add_argument("--to", default="now", metavar="TIME|now", help="now (default), a time, an age")
    p.add_argument("--topics", nargs="+", default=None, help="default: the config's topics")
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
    p = _command(
        sub,
        "dlq",
        help="inspect and redrive the dead-letter topic",
        description="list: records not yet redriven; show: one record, decoded; redrive: send\n"
        "selected records through the current codec and rules again.\n\n"
        + exit_help(
            {
                ExitCode.OK: "ok",
                ExitCode.FAILED: "some records failed again",
                ExitCode.REFUSED: "usage or config error",
                ExitCode.HALTED: "halted",
            }
        ),
        examples="  meisa-bridge dlq list --config bridge.yaml --rule profile\n"
        "  meisa-bridge dlq show --config bridge.yaml --partition 0 --offset 12\n"
        "  meisa-bridge dlq redrive --config bridge.yaml --error-class MappingError --dry-run\n",
    )
    p.add_argument("action", choices=["list", "show", "redrive"])
    p.add_argument("--config", required=True, help="deployment YAML")
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


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(
        sub,
        "status",
        help="how far behind the bridge is: lag per partition, members, DLQ size, budget",
        description="Read the config's consumer group from Kafka: per topic and partition the\n"
        "committed offset, the end offset (last stable offset) and the lag; the group's\n"
        "members and their partitions; the dead-letter topic's size. The committed\n"
        "offsets are read twice, --sample seconds apart, for the pace and the time until\n"
        "the lag is gone. When a bridge's /metrics answers (--metrics-url, by default the\n"
        "config's server host and port), it adds that replica's rate budget, the key's\n"
        "limits, whether it is throttled or halted, and the time to catch up at the key's\n"
        "full budget. Makes no Meisa call and needs no API key.\n\n"
        "exit codes: 0 printed (an unreachable /metrics is noted in the output),\n"
        "2 config error or Kafka did not answer",
        examples="  meisa-bridge status --config bridge.yaml\n"
        "  meisa-bridge status --config bridge.yaml --json | jq .lag\n"
        "  meisa-bridge status --config bridge.yaml --metrics-url http://10.0.3.7:9400/metrics\n"
        "  meisa-bridge status --config bridge.yaml --sample 0 --no-metrics   # one quick look\n",
    )
    p.add_argument("--config", required=True, help="deployment YAML (kafka, topics, group.id)")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.add_argument(
        "--sample",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between the two reads of the committed offsets (default: %(default)s; "
        "0: one read, no pace)",
    )
    metrics = p.add_mutually_exclusive_group()
    metrics.add_argument(
        "--metrics-url",
        default=None,
        metavar="URL",
        help="a bridge replica's /metrics (default: http://<server.host>:<server.port>/metrics, "
        "0.0.0.0 read as 127.0.0.1)",
    )
    metrics.add_argument("--no-metrics", action="store_true", help="do not read /metrics")
    p.set_defaults(handler=_status)


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
    _add_status(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.REFUSED
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (`meisa-bridge plan ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
