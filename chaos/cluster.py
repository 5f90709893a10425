"""The processes under test: bridge instances (`meisa-bridge run`), and the broker's restarts.

Every instance is a subprocess in its own session with its own log file. What happened to each
one (started, signalled, exited with which code) is kept in `history` for the report and the
checker's "no halt" figure: an exit the runner did not cause (or an exit code other than 0 after
its SIGTERM) is a halt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = Path(sys.executable).parent / "meisa-bridge"
TERM_WAIT = 60.0  # the bridge's shutdown grace (30 s) plus commit and close


@dataclass
class Instance:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    expected_exit: str | None = None  # "term" or "kill" once the runner signalled it
    stopped: bool = False


@dataclass
class Cluster:
    config: Path
    logs: Path
    env: dict[str, str]
    running: list[Instance] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    _next: int = 0

    def start(self) -> Instance:
        self._next += 1
        name = f"b{self._next}"
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(BRIDGE), "run", "--config", str(self.config)],
                stdout=out,
                stderr=out,
                env=self.env,
                start_new_session=True,
            )
        inst = Instance(name, proc, log)
        self.running.append(inst)
        self._note(inst, "start")
        return inst

    def pick(self, slot: int) -> Instance | None:
        # Not one already signalled: a SIGKILL would hide whether its SIGTERM ended it.
        live = [i for i in self.running if not i.stopped and i.expected_exit is None]
        return live[slot % len(live)] if live else None

    def kill(self, inst: Instance) -> None:
        inst.expected_exit = "kill"
        if inst.stopped:
            self.cont(inst)
        inst.proc.send_signal(signal.SIGKILL)
        inst.proc.wait()
        self._reap(inst)

    def term(self, inst: Instance, wait: bool = True) -> None:
        inst.expected_exit = "term"
        inst.proc.send_signal(signal.SIGTERM)
        self._note(inst, "SIGTERM")
        if wait:
            self.wait_exit(inst)

    def wait_exit(self, inst: Instance) -> None:
        try:
            inst.proc.wait(TERM_WAIT)
        except subprocess.TimeoutExpired:
            self._note(inst, f"no exit within {TERM_WAIT:g}s of SIGTERM: SIGKILL")
            inst.proc.kill()
            inst.proc.wait()
        self._reap(inst)

    def stop(self, inst: Instance) -> None:
        inst.proc.send_signal(signal.SIGSTOP)
        inst.stopped = True
        self._note(inst, "SIGSTOP")

    def cont(self, inst: Instance) -> None:
        if inst.proc.poll() is None:
            inst.proc.send_signal(signal.SIGCONT)
        inst.stopped = False
        self._note(inst, "SIGCONT")

    def reap_unexpected(self) -> list[Instance]:
        """Instances that exited without being told to; they are recorded as halts."""
        gone = [i for i in self.running if i.expected_exit is None and i.proc.poll() is not None]
        for inst in gone:
            self._reap(inst)
        return gone

    def shutdown(self) -> None:
        self.reap_unexpected()  # exited already (e.g. refused to start): not a SIGTERM's doing
        for inst in list(self.running):
            if inst.stopped:
                self.cont(inst)
            self.term(inst, wait=False)
        for inst in list(self.running):
            self.wait_exit(inst)

    def _reap(self, inst: Instance) -> None:
        code = inst.proc.returncode
        halted = inst.expected_exit is None or (inst.expected_exit == "term" and code != 0)
        self._note(inst, "exit", code=code, cause=inst.expected_exit, halted=halted)
        if inst in self.running:
            self.running.remove(inst)

    def _note(self, inst: Instance, what: str, **extra: Any) -> None:
        self.history.append({"t": time.time(), "instance": inst.name, "event": what, **extra})


def broker(action: str, port: int) -> None:
    """`scripts/kafka.sh start|stop` for the runner's broker (its data directory is kept)."""
    env = {**os.environ, "KAFKA_PORT": str(port)}
    subprocess.run(
        [str(ROOT / "scripts" / "kafka.sh"), action],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
