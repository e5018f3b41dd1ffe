"""A burst of connections against `rnnlm serve` on its defaults, from another process: N clients
connect at once and stay connected (an idle keep-alive pool), then each sends one completion at
the same moment; every answer is counted by kind.

What should happen: --max-streams (128) requests run, --queue (256) wait and run, the rest get
rnnlm's 503 (a JSON error object, code busy, Retry-After): no plain-text refusal of uvicorn's and
no connection closed unanswered, while the server stays within its open-files limit.

    .venv/bin/python benchmarks/burst.py                        # runs/demo, 1,000 connections
    .venv/bin/python benchmarks/burst.py --baseline-src /tmp/before/src   # also a server from another tree

``--open-files`` also serves this tree under a lower open-files limit (1,024 by default, soft
and hard: a limit it cannot raise), where 1,000 connections pass its connection limit (1,024 less
64 kept for its files). ``--baseline-src`` serves the same run from another source tree (e.g.
``git archive COMMIT src | tar -x -C /tmp/before``). The servers take rounds in turn. The client
raises its own open-files soft limit to the hard one (1,000 connections need more than a shell's
usual 1,024 less what Python holds); the table gives each server's limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cpu_model, table
from tests.serving import ServerProcess, http_request, post, read_response

PROMPTS = ["one hundred", "eight thousand", "two thousand three hundred", "fifty"]
KINDS = ["200", "503 busy (JSON, Retry-After)", "503 too_many_connections (JSON)", "503 plain text", "other",
         "closed unanswered", "connect failed"]


def kind(answer: tuple[int, dict, bytes] | None) -> str:
    if answer is None:
        return "closed unanswered"
    status, headers, body = answer
    if status == 200:
        return "200"
    if status != 503:
        return "other"
    if not headers.get("content-type", "").startswith("application/json"):
        return "503 plain text"
    code = json.loads(body)["error"]["code"]
    if code == "busy" and headers.get("retry-after"):
        return "503 busy (JSON, Retry-After)"
    return "503 too_many_connections (JSON)" if code == "too_many_connections" else "other"


async def burst(port: int, connections: int, tokens: int, server_pid: int) -> dict:
    """Open every connection, then send a request on each at once; counts, times and the
    server's open descriptors once all are connected."""
    opened = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(connections)),
                                  return_exceptions=True)
    pairs = [c for c in opened if not isinstance(c, BaseException)]
    await asyncio.sleep(0.5)  # the server accepts what the kernel queued
    descriptors = len(os.listdir(f"/proc/{server_pid}/fd")) if Path(f"/proc/{server_pid}/fd").exists() else None
    started = time.perf_counter()

    async def exchange(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, float]:
        body = json.dumps({"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": tokens, "seed": i}).encode()
        try:
            writer.write(http_request("POST", "/v1/completions", body))
            await writer.drain()
            answer = await read_response(reader)
        except ConnectionError:
            answer = None
        writer.close()
        return kind(answer), time.perf_counter() - started

    results = await asyncio.gather(*(exchange(i, r, w) for i, (r, w) in enumerate(pairs)))
    counts = Counter(k for k, _ in results)
    counts["connect failed"] = connections - len(pairs)
    refused = sorted(t for k, t in results if k.startswith("503"))
    return {"counts": counts, "seconds": time.perf_counter() - started, "descriptors": descriptors,
            "refusal_p50": refused[len(refused) // 2] if refused else float("nan"),
            "last_200": max((t for k, t in results if k == "200"), default=float("nan"))}


def open_files_limit(pid: int | str = "self") -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return f"{soft}/{hard}"
    return "?"


def raise_own_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo", help="run folder to serve (default: runs/demo, make demo)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=256, help="max_tokens of each request")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-src", default=None, help="also serve from this source tree (its src folder)")
    parser.add_argument("--open-files", type=int, default=1024,
                        help="also serve this tree under this open-files limit, soft and hard (0: not)")
    parser.add_argument("--server-threads", type=int, default=1, help="torch threads of the server")
    args = parser.parse_args()
    if not (Path(args.run) / "model.safetensors").exists():
        raise SystemExit(f"{args.run}: no trained run there (make demo trains runs/demo)")
    raise_own_limit()
    servers = {"rnnlm serve (this tree)": ServerProcess(args.run, "--threads", str(args.server_threads))}
    if args.open_files:
        servers[f"rnnlm serve (this tree, ulimit -n {args.open_files})"] = ServerProcess(
            args.run, "--threads", str(args.server_threads), open_files=args.open_files)
    if args.baseline_src:
        servers[f"rnnlm serve ({args.baseline_src})"] = ServerProcess(
            args.run, "--threads", str(args.server_threads), env={"PYTHONPATH": str(Path(args.baseline_src).resolve())})
    print(f"# Burst\n\n{cpu_model()}, {os.cpu_count()} cores; {args.run} on the defaults (--max-streams 128, "
          f"--queue 256); {args.connections:,} connections opened, then one request of {args.tokens} tokens on each "
          f"at once; {args.rounds} rounds; client open files {open_files_limit()}; load average before: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n", flush=True)
    rows = []
    try:
        for round_ in range(args.rounds):
            for name, server in servers.items():
                result = asyncio.run(burst(server.port, args.connections, args.tokens, server.process.pid))
                after = post(server.port, "/v1/completions", {"prompt": "one", "max_tokens": 4})[0]
                log = server.log()
                rows.append([name, round_ + 1, open_files_limit(server.process.pid), result["descriptors"],
                             *(result["counts"][k] for k in KINDS), f"{result['refusal_p50']:.2f}",
                             f"{result['last_200']:.1f}", after, "yes" if "Traceback" in log else "no",
                             " ".join(f"{x:.1f}" for x in os.getloadavg())])
                print(f"round {round_ + 1}: {name}: {dict(result['counts'])}", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print(table(["server", "round", "server open files", "fds in use", *KINDS, "refusal p50 s", "last 200 s",
                 "next request", "traceback", "load avg"], rows))


if __name__ == "__main__":
    main()
