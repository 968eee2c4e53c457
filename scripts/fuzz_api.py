#!/usr/bin/env python3
"""Fuzzes a running clinicflow API with schemathesis against docs/openapi.json.

Every operation is fuzzed once per role token given (`--token <group>=<token>`, one for
the patient and one per staff role of the catalog), with the checks not_a_server_error, response_schema_conformance,
status_code_conformance and content_type_conformance, in every phase schemathesis has
(examples, coverage, fuzzing, stateful). The outcome is read from schemathesis' NDJSON
event stream (no scraping of its human output) and written as JSON:

    {"cases": <test cases generated and sent>,
     "server_errors": <distinct failures of not_a_server_error>,
     "schema_violations": <distinct failures of the three conformance checks>,
     "failures": ["POST /checkups [patient]: response_schema_conformance: ... (HTTP 422)", ...]}

A failure is counted once per token, operation, check, kind and response status,
however many generated cases reproduce it. `failures` lists the server errors first, then
the schema violations, then anything else (schemathesis errors, a timeout), at most 50. The exit status is 0 when the run happened,
failures or not (they are in the JSON), and 2 when it could not run: schemathesis
missing, the schema unreadable, the API unreachable.

    .venv/bin/python scripts/fuzz_api.py --base-url http://127.0.0.1:3000 \\
        --token "patient=$PATIENT" --token "centre=$STAFF" --max-examples 15 --out fuzz.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
]
SERVER_ERROR_CHECKS = {"not_a_server_error"}
SCHEMA_CHECKS = {"response_schema_conformance", "status_code_conformance", "content_type_conformance"}
MAX_LISTED = 50


class CannotRun(Exception):
    """The run could not happen at all."""


def schemathesis_cli() -> str:
    """The `st` executable next to this interpreter (the project's .venv), or on PATH."""
    beside = Path(sys.executable).parent / "st"
    if beside.exists():
        return str(beside)
    found = shutil.which("st")
    if found:
        return found
    raise CannotRun(
        "schemathesis is not installed: .venv/bin/pip install -r requirements-dev.txt"
    )


def run_one(cli: str, schema: Path, base_url: str, role: str, token: str, args: argparse.Namespace) -> dict:
    """Runs schemathesis once with one token; returns its counts and failures."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{role}-") as work:
        ndjson = Path(work) / "events.ndjson"
        command = [
            cli,
            "run",
            str(schema),
            "--url",
            base_url,
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            str(args.max_examples),
            "--checks",
            ",".join(CHECKS),
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(ndjson),
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        try:
            done = subprocess.run(
                command,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=args.timeout,
                check=False,
            )
            timed_out = False
        except subprocess.TimeoutExpired:
            done = None
            timed_out = True
        if not ndjson.exists():
            tail = "" if done is None else (done.stdout + done.stderr)[-2000:]
            raise CannotRun(f"schemathesis ({role}) produced no report; its output ends with:\n{tail}")
        result = parse_events(ndjson, role)
        if timed_out:
            result["other"].append(f"[{role}] schemathesis did not finish within {args.timeout} s")
        elif done is not None and done.returncode not in (0, 1):
            result["other"].append(f"[{role}] schemathesis exited with {done.returncode}")
        print(
            f"fuzz_api: {role}: {result['cases']} cases, {result['server_errors']} server errors, "
            f"{result['schema_violations']} schema violations (seed {result['seed']})",
            file=sys.stderr,
        )
        return result


def parse_events(path: Path, role: str) -> dict:
    """Reads schemathesis' NDJSON events into counts and distinct failures."""
    cases = 0
    answered = 0
    seed = None
    server: dict[tuple, str] = {}
    schema: dict[tuple, str] = {}
    other: list[str] = []
    fatal: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            event = json.loads(line)
            (kind, body), = event.items()
            if kind == "Initialize":
                seed = body.get("seed")
            elif kind == "ScenarioFinished":
                recorder = body.get("recorder") or {}
                label = recorder.get("label", "?")
                interactions = recorder.get("interactions") or {}
                cases += len(interactions)
                answered += sum(1 for i in interactions.values() if (i or {}).get("response"))
                for case_id, checks in (recorder.get("checks") or {}).items():
                    for check in checks:
                        if check.get("status") != "failure":
                            continue
                        name = check.get("name", "?")
                        failure = (check.get("failure_info") or {}).get("failure") or {}
                        title = failure.get("title", "failure")
                        message = str(failure.get("message") or "").strip().splitlines()
                        reason = message[0][:120] if message else ""
                        response = (interactions.get(case_id) or {}).get("response") or {}
                        status = response.get("status_code")
                        key = (label, name, title, status)
                        text = f"{label} [{role}]: {name}: {title}" + (f" (HTTP {status})" if status else "")
                        text += f": {reason}" if reason else ""
                        if name in SERVER_ERROR_CHECKS:
                            server.setdefault(key, text)
                        elif name in SCHEMA_CHECKS:
                            schema.setdefault(key, text)
                        else:
                            other.append(text)
            elif kind == "NonFatalError":
                label = body.get("label", "?")
                info = body.get("info") or {}
                message = str(info.get("message") or info.get("title") or "error").splitlines()[0][:200]
                other.append(f"{label} [{role}]: error: {message}")
            elif kind == "FatalError":
                info = body.get("exception") or body.get("info") or body
                fatal.append(str(info)[:500])
    if fatal and cases == 0:
        raise CannotRun(f"schemathesis ({role}) failed: {fatal[0]}")
    if cases > 0 and answered == 0:
        raise CannotRun(f"the API answered none of the {cases} requests ({role}): is it running?")
    return {
        "cases": cases,
        "server_errors": len(server),
        "schema_violations": len(schema),
        "server": list(server.values()),
        "schema": list(schema.values()),
        "other": sorted(set(other)) + [f"[{role}] fatal: {f}" for f in fatal],
        "seed": seed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="the API, e.g. http://127.0.0.1:3000")
    parser.add_argument(
        "--token",
        action="append",
        required=True,
        metavar="GROUP=TOKEN",
        help="a bearer token in a role's group; once per role (patient and every staff role)",
    )
    parser.add_argument("--max-examples", type=int, default=15, help="generated cases per operation and phase")
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument("--schema", type=Path, default=REPO / "docs" / "openapi.json", help="the OpenAPI document")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis' random seed, to reproduce a run")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per token")
    args = parser.parse_args()
    if args.max_examples < 1:
        parser.error("--max-examples must be at least 1")
    tokens = []
    for given in args.token:
        role, sep, token = given.partition("=")
        if not sep or not role or not token:
            parser.error(f"--token wants GROUP=TOKEN, got {role or given!r}")
        tokens.append((role, token))
    try:
        if not args.schema.is_file():
            raise CannotRun(f"{args.schema}: no such OpenAPI document")
        cli = schemathesis_cli()
        runs = [
            run_one(cli, args.schema, args.base_url.rstrip("/"), role, token, args)
            for role, token in tokens
        ]
    except CannotRun as why:
        print(f"fuzz_api: cannot run: {why}", file=sys.stderr)
        return 2
    # Server errors first, then schema violations, then anything else (errors, timeouts).
    failures = [f for key in ("server", "schema", "other") for r in runs for f in r[key]]
    result = {
        "cases": sum(r["cases"] for r in runs),
        "server_errors": sum(r["server_errors"] for r in runs),
        "schema_violations": sum(r["schema_violations"] for r in runs),
        "failures": failures[:MAX_LISTED] + ([f"... and {len(failures) - MAX_LISTED} more"] if len(failures) > MAX_LISTED else []),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
