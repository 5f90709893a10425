"""The exit codes of every `meisa-bridge` command: one table, so scripts and supervisors read them
the same way whatever the command.

    0    OK           done (run: a clean shutdown on SIGTERM/SIGINT, finished offsets committed)
    1    FAILED       done, but some of the work failed: validate found problems, a rule test
                      failed, replay or redrive calls were rejected (the rest went through);
                      run: stopped and committed, but the Kafka consumer froze while closing
    2    REFUSED      nothing was done: bad usage, a config or rules error, no such record, Kafka
                      not answering `status`, or
                      `run` refused to start (Meisa or Kafka unreachable, key rejected, scopes
                      missing, no dead-letter topic)
    3    HALTED       stopped part way on a halt: 401/403 from Meisa, the DLQ breaker tripped, a
                      poison message with no DLQ, a DLQ write that failed, a fatal Kafka error.
                      Only finished work counts (run: only finished offsets are committed;
                      replay: the same command continues)
    130  INTERRUPTED  Ctrl-C outside `run` (which treats SIGINT as a clean shutdown)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    REFUSED = 2
    HALTED = 3
    INTERRUPTED = 130


def exit_help(meanings: Mapping[ExitCode, str]) -> str:
    """A command's `--help` line of exit codes, numbered from this table so the two never
    disagree: `{ExitCode.HALTED: "halted (401/403)"}` -> "exit codes: 3 halted (401/403)"."""
    return "exit codes: " + ", ".join(
        f"{int(code)} {text}" for code, text in sorted(meanings.items())
    )
