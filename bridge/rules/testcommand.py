"""`meisa-bridge test`: find rule test files, run them, report as text or JUnit XML.

Exit codes: 0 every test passed; 1 a test failed, a test or rules file has errors, or no test
file was found.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from xml.etree import ElementTree as ET

from bridge.errors import ConfigError, ConfigErrors
from bridge.exitcodes import ExitCode
from bridge.rules.ruletest import TestResult, run_test
from bridge.rules.testfile import TestFile, load_test_file

PATTERNS = ("*.test.yaml", "*.test.yml")
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv"})


@dataclass
class FileReport:
    """One test file: its results, or the errors that kept it from running."""

    path: str
    results: list[TestResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


def find_test_files(targets: Sequence[str]) -> tuple[list[str], list[str]]:
    """(files, targets that matched nothing). A target is a file, a directory (searched
    recursively for *.test.yaml) or a glob pattern (`**` crosses directories)."""
    files: list[str] = []
    missing: list[str] = []
    for target in targets:
        found = _expand(target)
        if not found:
            missing.append(target)
        files += (f for f in found if f not in files)
    return files, missing


def _expand(target: str) -> list[str]:
    path = Path(target)
    if path.is_dir():
        return sorted(_walk(path))
    if path.is_file():
        return [target]
    return sorted(p for p in glob.glob(target, recursive=True) if Path(p).is_file())


def _walk(root: Path) -> Iterable[str]:
    """*.test.yaml under `root`, skipping hidden directories (.git, .venv) and dependencies."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        for name in files:
            if any(fnmatch.fnmatch(name, pattern) for pattern in PATTERNS):
                yield os.path.join(folder, name)


def run_file(path: str, *, rules: str | None = None) -> FileReport:
    from bridge.codecs import build_decoder
    from bridge.config import load_config

    start = time.perf_counter()
    report = FileReport(path)
    spec: TestFile = load_test_file(path, rules=rules)
    report.errors += (e.format() for e in spec.errors)
    try:
        config = load_config(spec.rules, strict_env=False)
        decoder = build_decoder(config.codec)
    except ConfigError as exc:
        errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
        report.errors += (f"rules under test: {e.format()}" for e in errors)
        return report
    if not spec.errors:
        report.results = [run_test(t, config.rules, decoder) for t in spec.tests]
    report.seconds = time.perf_counter() - start
    return report


def test_command(args: argparse.Namespace) -> int:
    files, missing = find_test_files(args.paths)
    for target in missing:
        print(f"{target}: no test files (*.test.yaml) found", file=sys.stderr)
    reports = [run_file(f, rules=args.rules) for f in files]
    out = sys.stdout if args.output in (None, "-") else None
    if out is None:
        with open(args.output, "w", encoding="utf-8") as handle:
            _write(args.format, reports, handle)
        _summary(reports, sys.stdout)
    else:
        _write(args.format, reports, out)
    failed = any(r.errors or r.failed for r in reports)
    return ExitCode.FAILED if failed or missing or not files else ExitCode.OK


def _write(fmt: str, reports: Sequence[FileReport], out: TextIO) -> None:
    if fmt == "junit":
        write_junit(reports, out)
    else:
        write_text(reports, out)


def write_text(reports: Iterable[FileReport], out: TextIO) -> None:
    reports = list(reports)
    for report in reports:
        out.write(f"{report.path}\n")
        for error in report.errors:
            out.write(f"  ERROR {error}\n")
        for result in report.results:
            test = result.test
            if result.passed:
                out.write(f"  ok    {test.name}\n")
                continue
            out.write(f"  FAIL  {test.name} ({test.file}:{test.line})\n")
            for problem in result.problems:
                out.write(f"        {problem}\n")
    _summary(reports, out)


def _summary(reports: Sequence[FileReport], out: TextIO) -> None:
    total = sum(len(r.results) for r in reports)
    failed = sum(r.failed for r in reports)
    errors = sum(len(r.errors) for r in reports)
    parts = [f"{total - failed} passed", f"{failed} failed"]
    if errors:
        parts.append(f"{errors} errors")
    out.write(f"{', '.join(parts)} in {len(reports)} file(s)\n")


def write_junit(reports: Iterable[FileReport], out: TextIO) -> None:
    """JUnit XML: one <testsuite> per file, one <testcase> per test; file errors are an <error>."""
    suites = ET.Element("testsuites", name="meisa-bridge rules")
    for report in reports:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=report.path,
            tests=str(len(report.results) + bool(report.errors)),
            failures=str(report.failed),
            errors=str(int(bool(report.errors))),
            time=f"{report.seconds:.3f}",
        )
        if report.errors:
            case = ET.SubElement(suite, "testcase", name="(load)", classname=report.path)
            error = ET.SubElement(case, "error", message=report.errors[0])
            error.text = "\n".join(report.errors)
        for result in report.results:
            case = ET.SubElement(
                suite,
                "testcase",
                name=result.test.name,
                classname=report.path,
                file=result.test.file,
                line=str(result.test.line),
            )
            if not result.passed:
                failure = ET.SubElement(case, "failure", message=result.problems[0])
                failure.text = "\n".join(result.problems)
    ET.indent(suites)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(suites, encoding="unicode") + "\n")
