"""Serving speed: the same streamed requests served one at a time, then by 1, 8, 32 and 128
concurrent clients, against `rnnlm serve` as a real process on loopback.

"One at a time" is the server started with --max-streams 1 (no batching: every request waits
for the one before it) under the same 32 concurrent clients; the other rows are the server as it
starts by default (continuous batching). Each client sends its requests one after another over
one keep-alive connection (as an HTTP client's pool does) and timestamps every server-sent event as it arrives (one event per token: a token
that arrives in the same read as the one before it counts a gap of 0, which is what the client
saw). Reported per row: aggregate tokens/s over the row's wall time, time to first token and the
per-token latency (the gaps between a stream's consecutive tokens), p50 and p95, the p95 of the
gaps between a stream's events (when a server sends several tokens an event), and the CPU the
server process and this client process used over the row (percent of one core). With --openai,
the 1 and 32 concurrent rows are run again with the official openai client (``AsyncOpenAI``):
what a real client costs the machine the clients share with the server.

    .venv/bin/python benchmarks/serving.py                  # runs/demo (make demo), 256 requests x 64 tokens
    .venv/bin/python benchmarks/serving.py --quick          # a short check that it runs
    .venv/bin/python benchmarks/serving.py --openai         # and the openai client's rows
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cpu_model, table
from tests.serving import ServerProcess, http_request, metric, read_response, request, wait_for

PROMPTS = ["one hundred", "eight thousand", "two thousand three hundred", "fifty", "nine hundred ninety",
           "seven thousand", "four hundred twelve", "thirty one"]


@dataclass
class Result:
    tokens: int = 0
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, sent: float, times: list[float], tokens: int) -> None:
        """One request sent at ``sent`` whose tokens arrived at ``times`` (its usage's count
        ``tokens``, 0 where it had none); no token at all is an error."""
        if not times:
            self.errors += 1
            return
        self.tokens += tokens or len(times)
        self.ttft.append(times[0] - sent)
        self.gaps.extend(b - a for a, b in itertools.pairwise(times))


TEXT = re.compile(rb'"text": "((?:[^"\\\\]|\\\\.)*)"')
USAGE = re.compile(rb'"completion_tokens": (\d+)')


async def one_request(connection: list, port: int, body: bytes, result: Result) -> None:
    """One streamed request on the client's keep-alive connection (``connection``: [reader,
    writer], opened on first use, as an HTTP client's pool would). An event may carry several
    tokens (the server sends what accumulated since a stream's last event in one): each token of
    a word-level run writes one space-led word, so an event's tokens are its text's words; the
    first arrives after the gap since the event before, the others with a gap of 0. The
    request's tokens are the usage's count."""
    if not connection:
        connection.extend(await asyncio.open_connection("127.0.0.1", port))
    reader, writer = connection
    sent = time.perf_counter()
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    times: list[float] = []
    buffer = b""
    tokens = 0
    complete = done = False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        now = time.perf_counter()
        if not times and not buffer and not data.startswith(b"HTTP/1.1 200"):
            break
        buffer += data
        cut = buffer.rfind(b"\n\n") + 2 if b"\n\n" in buffer else 0  # whole events only
        events, buffer = buffer[:cut], buffer[cut:]
        for text in TEXT.findall(events):
            words = len(text.split())
            if words:
                times.extend([now] * words)
        used = USAGE.search(events)
        if used:
            tokens = int(used.group(1))
        done = done or b"data: [DONE]" in events
        if done and buffer.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of the response
            complete = True
            break
    if not complete:
        writer.close()
        connection.clear()
    result.add(sent, times, tokens)


REQUEST_HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class StreamingClient(asyncio.Protocol):
    """A client on its own keep-alive connection, sending its requests one after another: what
    ``one_request`` reads and counts, but driven by the event loop's callbacks (no stream
    reader, no coroutine woken per event), so the clients take as little of the machine they
    share with the server as asyncio allows. A response that is not a 200, or a connection
    that closes before its response ends, counts an error and ends this client (the others take
    its requests)."""

    def __init__(self, queue: list[bytes], result: Result, ended: asyncio.Future):
        self.queue, self.result, self.ended = queue, result, ended
        self.transport: asyncio.Transport | None = None
        self.sent, self.times, self.buffer, self.tokens, self.done = 0.0, [], b"", 0, False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        if not self.queue:
            self.transport.close()
            return
        body = self.queue.pop()
        self.times, self.buffer, self.tokens, self.done = [], b"", 0, False
        self.sent = time.perf_counter()
        self.transport.write(REQUEST_HEAD % len(body) + body)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.times and not self.buffer and not data.startswith(b"HTTP/1.1 200"):
            self.result.errors += 1
            self.sent = 0.0
            self.transport.close()
            return
        buffer = self.buffer + data
        cut = buffer.rfind(b"\n\n") + 2 if b"\n\n" in buffer else 0  # whole events only
        events, self.buffer = buffer[:cut], buffer[cut:]
        for text in TEXT.findall(events):
            words = len(text.split())
            if words:
                self.times.extend([now] * words)
        if b'"usage"' in events:
            used = USAGE.search(events)
            if used:
                self.tokens = int(used.group(1))
        self.done = self.done or b"data: [DONE]" in events
        if self.done and self.buffer.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of the response
            self.count()
            self.send_next()

    def count(self) -> None:
        self.result.add(self.sent, self.times, self.tokens)
        self.sent = 0.0  # no request in flight

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sent:  # a response cut short
            self.result.errors += 1
        if not self.ended.done():
            self.ended.set_result(None)


async def run_clients(port: int, requests: list[bytes], clients: int,
                      start: Callable[[], None] = lambda: None) -> tuple[Result, float]:
    """``clients`` clients (``StreamingClient``) share ``requests``: the result and the wall
    seconds from ``start`` (called as the clock starts)."""
    loop = asyncio.get_running_loop()
    result, queue, ends = Result(), list(reversed(requests)), []
    start()
    started = time.perf_counter()
    for _ in range(clients):
        ended = loop.create_future()
        await loop.create_connection(lambda: StreamingClient(queue, result, ended), "127.0.0.1", port)
        ends.append(ended)
    await asyncio.gather(*ends)
    return result, time.perf_counter() - started


async def run_openai_clients(port: int, requests: list[bytes], clients: int,
                             start: Callable[[], None] = lambda: None) -> tuple[Result, float]:
    """``run_clients`` with the official openai client (``AsyncOpenAI``, one per client, streaming):
    what a real client costs and sees. Each chunk's tokens are the words of its text (see
    ``one_request``), the request's tokens its usage's count."""
    import openai

    result = Result()
    queue = list(reversed(requests))
    model = json.loads(request(port, "GET", "/v1/models")[2])["data"][0]["id"]

    apis = [openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
            for _ in range(clients)]  # made before the clock starts, as a client's pool would be

    async def client(api) -> None:
        async with api:
            while queue:
                body = json.loads(queue.pop())
                body.pop("stream", None)
                sent, times, tokens = time.perf_counter(), [], 0
                try:
                    async for chunk in await api.completions.create(model=model, stream=True, **body):
                        now = time.perf_counter()
                        for choice in chunk.choices:
                            times.extend([now] * len(choice.text.split()))
                        if chunk.usage is not None:
                            tokens = chunk.usage.completion_tokens
                except openai.APIError:
                    times = []
                result.add(sent, times, tokens)

    start()
    started = time.perf_counter()
    await asyncio.gather(*(client(api) for api in apis))
    return result, time.perf_counter() - started


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user and system) of this process, or of process ``pid`` (its every thread)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(server, clients: int, requests: list[bytes], openai_client: bool) -> tuple[Result, float, str, str]:
    """One row's run: the result, its wall seconds, and the server's and this client process's
    CPU over it (percent of one core: 200% is both cores of a 2-core machine)."""
    before: list[float] = []
    run = run_openai_clients if openai_client else run_clients
    result, seconds = asyncio.run(run(server.port, requests, clients,
                                      lambda: before.extend([cpu_seconds(server.process.pid), cpu_seconds()])))
    server_cpu, client_cpu = cpu_seconds(server.process.pid) - before[0], cpu_seconds() - before[1]
    return result, seconds, f"{100 * server_cpu / seconds:.0f}%", f"{100 * client_cpu / seconds:.0f}%"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, result: Result, seconds: float, cpu: tuple[str, str] = ("-", "-")) -> list:
    ms = lambda v: f"{1000 * v:.2f}"
    events = [gap for gap in result.gaps if gap > 0]  # between a stream's events (a gap of 0: the same read)
    return [name, f"{result.tokens / seconds:,.0f}", ms(percentile(result.ttft, 0.5)), ms(percentile(result.ttft, 0.95)),
            ms(percentile(result.gaps, 0.5)), ms(percentile(result.gaps, 0.95)),
            f"{statistics.fmean(result.gaps) * 1000:.2f}" if result.gaps else "-", ms(percentile(events, 0.95)),
            result.errors, *cpu, " ".join(f"{x:.1f}" for x in os.getloadavg())]


# --- the load test: nothing lost


@dataclass
class LoadTally:
    done: list = field(default_factory=list)  # (request body, [(text, finish) per choice])
    dropped: int = 0  # clients that went away mid-stream on purpose
    refused: int = 0  # 503: no room (the client waits a little and goes on)
    failed: list = field(default_factory=list)  # anything else: what went wrong


def load_request(rng: random.Random, seed: int) -> tuple[dict, str]:
    """A request of the mix and how its client behaves: "stream", "whole" or "drop" (a streamed
    request whose client goes away after its first events)."""
    body: dict = {"prompt": rng.choice(PROMPTS), "max_tokens": rng.randint(4, 64), "seed": seed,
                  "temperature": rng.choice([0.7, 0.8, 1.0])}
    if rng.random() < 0.25:
        body["n"] = rng.randint(2, 3)
    if rng.random() < 0.3:
        body["stop"] = [rng.choice([" hundred", " thousand ,", " one"])]
    if rng.random() < 0.1:
        body["top_k"] = 5
    kind = rng.choices(["stream", "whole", "drop"], weights=[6, 3, 1])[0]
    if kind != "whole":
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, kind


def choices_of(body: dict, kind: str, data: bytes) -> list[tuple[str, str]]:
    """Each choice's (text, finish reason), from the JSON answer or its server-sent events."""
    if kind == "whole":
        answer = json.loads(data)
        return [(c["text"], c["finish_reason"]) for c in sorted(answer["choices"], key=lambda c: c["index"])]
    texts, finish = [""] * body.get("n", 1), [None] * body.get("n", 1)
    for block in data.decode().split("\n\n"):
        if block.startswith("data: {"):
            event = json.loads(block[len("data: "):])
            for c in event["choices"]:
                texts[c["index"]] += c["text"]
                finish[c["index"]] = c["finish_reason"] or finish[c["index"]]
    if not data.rstrip().endswith(b"data: [DONE]"):
        raise ValueError("no [DONE] at the end")
    return list(zip(texts, finish))


async def load_client(port: int, index: int, deadline: float, tally: LoadTally) -> None:
    rng = random.Random(index)
    reader = writer = None
    count = 0
    while time.perf_counter() < deadline:
        body, kind = load_request(rng, index * 100_000 + count)
        count += 1
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(http_request("POST", "/v1/completions", json.dumps(body).encode()))
        try:
            if kind == "drop":
                await reader.readuntil(b"data: {")
                await reader.read(rng.randint(1, 4096))
                tally.dropped += 1
                writer.close()
                reader = writer = None
                continue
            answer = await read_response(reader)
            if answer is None:
                raise ValueError("the connection closed unanswered")
            status, _, data = answer
            if status == 503:
                tally.refused += 1
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                raise ValueError(f"status {status}: {data[:200]!r}")
            tally.done.append((body, choices_of(body, kind, data)))
        except Exception as error:  # noqa: BLE001 - every failure is counted and shown
            tally.failed.append(f"{kind} {json.dumps(body)}: {type(error).__name__}: {error}")
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def alone_choices(session, body: dict) -> list[tuple[str, str]]:
    """What each choice of ``body`` writes alone: ``GenerationSession.complete`` with its seed."""
    from rnnlm.serve.responses import OPENAI_FINISH

    got = []
    for i in range(body.get("n", 1)):
        pieces = list(session.complete(body["prompt"], max_tokens=body["max_tokens"], stop=body.get("stop", ()),
                                       temperature=body["temperature"], top_k=body.get("top_k"), seed=body["seed"] + i))
        got.append((pieces[-1].stream.text, OPENAI_FINISH[pieces[-1].finish_reason]))
    return got


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def load_test(run: str, clients: int, seconds: float, threads: int) -> None:
    """``clients`` clients for ``seconds`` against the default server, every answer checked
    against ``GenerationSession.complete`` with its seed, the gauges and the memory after."""
    from rnnlm.generation.session import GenerationSession

    server = ServerProcess(run, "--threads", str(threads))
    try:
        warm = LoadTally()
        asyncio.run(run_load(server.port, 16, 2.0, warm))  # warm up (slots grown, code paths run)
        rss = [rss_mb(server.process.pid)]
        tally = LoadTally()
        started = time.perf_counter()
        for _ in range(4):  # in quarters, the server's memory after each
            asyncio.run(run_load(server.port, clients, seconds / 4, tally))
            settled = wait_for(lambda: metric(server.port, "rnnlm_active_streams") == 0
                               and metric(server.port, "rnnlm_queued_requests") == 0, timeout=30)
            rss.append(rss_mb(server.process.pid))
        took = time.perf_counter() - started
        active, queued = metric(server.port, "rnnlm_active_streams"), metric(server.port, "rnnlm_queued_requests")
    finally:
        server.stop()
    session = GenerationSession.load(run, device="cpu")
    wrong = [(body, got) for body, got in tally.done if got != alone_choices(session, body)]
    choices = sum(len(got) for _, got in tally.done)
    print(f"\n# Load test\n\n{clients} clients for {seconds:.0f} s ({took:.1f} s with the last answers): "
          f"{len(tally.done):,} requests answered ({choices:,} choices), {tally.dropped:,} clients gone "
          f"mid-stream, {tally.refused:,} refused (503), {len(tally.failed)} failed; "
          f"{len(wrong)} texts not the seed's text alone; active streams after: {active:.0f}, queued: "
          f"{queued:.0f} (settled: {settled}); server RSS after the warm-up and after each quarter: "
          f"{' '.join(f'{x:.1f}' for x in rss)} MB")
    for line in tally.failed[:5]:
        print("failed:", line)
    for body, got in wrong[:5]:
        print("wrong:", json.dumps(body), got, alone_choices(session, body))


async def run_load(port: int, clients: int, seconds: float, tally: LoadTally) -> None:
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(load_client(port, i, deadline, tally) for i in range(clients)))


def complete_tokens_per_second(run: str, requests: list[bytes], rounds: int, threads: int) -> float:
    """The same requests written one after another by ``GenerationSession.complete`` in this
    process (no server, no client): what a lone client could get at most. Fastest of ``rounds``."""
    import torch

    from rnnlm.generation.session import GenerationSession

    torch.set_num_threads(threads)
    session = GenerationSession.load(run, device="cpu")
    best = 0.0
    for _ in range(rounds):
        tokens, started = 0, time.perf_counter()
        for body in map(json.loads, requests):
            for piece in session.complete(body["prompt"], max_tokens=body["max_tokens"], seed=body["seed"],
                                          temperature=body["temperature"]):
                pass
            tokens += piece.stream.tokens
        best = max(best, tokens / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo", help="run folder to serve (default: runs/demo, make demo)")
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of each request")
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--one-at-a-time-clients", type=int, default=32)
    parser.add_argument("--server-threads", "--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--rounds", type=int, default=2, help="each row is run this many times; the fastest is kept")
    parser.add_argument("--quick", action="store_true", help="32 requests of 16 tokens, one round")
    parser.add_argument("--load", type=float, default=0, metavar="SECONDS",
                        help="only the load test, this long: a mix of streamed and whole requests, n > 1, stop "
                             "strings, clients that go away; every answer checked against its seed alone")
    parser.add_argument("--load-clients", type=int, default=256)
    parser.add_argument("--openai", action="store_true",
                        help="also the 1 and 32 concurrent rows with the official openai client (AsyncOpenAI)")
    args = parser.parse_args()
    if args.load:
        load_test(args.run, args.load_clients, args.load, args.server_threads)
        return
    if args.quick:
        args.requests, args.tokens, args.rounds = 32, 16, 1
    if not (Path(args.run) / "model.safetensors").exists():
        raise SystemExit(f"{args.run}: no trained run there (make demo trains runs/demo)")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    requests = [json.dumps({"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.tokens, "seed": i,
                            "temperature": 0.8, "stream": True,
                            "stream_options": {"include_usage": True}}).encode() for i in range(args.requests)]
    levels = [int(c) for c in args.clients.split(",")]
    common = ["--threads", str(args.server_threads), "--queue", str(args.requests + 8)]
    print(f"# Serving\n\n{cpu_model()}, {os.cpu_count()} cores; {args.run}; {args.requests} streamed requests of "
          f"{args.tokens} tokens per row, best of {args.rounds} rounds; server torch threads {args.server_threads}; "
          f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n", flush=True)
    single = ServerProcess(args.run, "--max-streams", "1", *common)
    batched = ServerProcess(args.run, "--max-streams", str(max(levels)), *common)
    ways = [(f"one at a time ({args.one_at_a_time_clients} clients, --max-streams 1)", single,
             args.one_at_a_time_clients, False)] + [(f"{c} concurrent", batched, c, False) for c in levels]
    if args.openai:
        import openai  # noqa: F401 - imported before the rows: its import is not the client's work per token

        ways += [(f"{c} concurrent, openai client", batched, c, True) for c in (1, 32) if c in levels]
    best: dict[str, tuple] = {}
    try:
        for server in (single, batched):
            asyncio.run(run_clients(server.port, requests[:8], 4))  # warm up
        for round_ in range(args.rounds):  # in turn, so that a busy spell of the machine slows every row alike
            for name, server, clients, openai_client in ways:
                result, seconds, server_cpu, client_cpu = measured(server, clients, requests, openai_client)
                made = row(name, result, seconds, (server_cpu, client_cpu))
                print(f"round {round_ + 1}: {name}: {result.tokens / seconds:,.0f} tokens/s", file=sys.stderr,
                      flush=True)
                if name not in best or result.tokens / seconds > best[name][0]:
                    best[name] = (result.tokens / seconds, made)
    finally:
        single.stop()
        batched.stop()
    rows = [best[name][1] for name, *_ in ways]
    alone = complete_tokens_per_second(args.run, requests, args.rounds, args.server_threads)
    print(table(["serving", "tokens/s", "TTFT p50 ms", "TTFT p95 ms", "per-token p50 ms", "per-token p95 ms",
                 "per-token mean ms", "event gap p95 ms", "errors", "server CPU", "client CPU", "load avg"], rows))
    base = float(rows[0][1].replace(",", ""))
    lone_of = {kind: next((r for r in rows if r[0] == name), None)
               for kind, name in (("raw", "1 concurrent"), ("openai", "1 concurrent, openai client"))}
    for r in rows[1:]:
        lone = lone_of["openai" if "openai" in r[0] else "raw"]
        line = f"{r[0]}: {float(r[1].replace(',', '')) / base:.1f}x the tokens/s of one at a time"
        if lone is not None:
            ratio = lambda i: f"{float(r[i]) / float(lone[i]):.1f}x" if float(lone[i]) else f"{r[i]} ms against 0 ms"
            line += f", per-token p95 {ratio(5)} a lone client's (mean {ratio(6)}; between events, p95 {ratio(7)})"
        print(line)
    for lone in filter(None, lone_of.values()):
        print(f"{lone[0]}: {float(lone[1].replace(',', '')) / alone:.0%} of the tokens/s of "
              f"GenerationSession.complete in one process, no server ({alone:,.0f} tokens/s)")


if __name__ == "__main__":
    main()
