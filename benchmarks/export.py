"""Exported models: the page's size and what its fp16 and 8-bit weights cost, and how fast each
way of running a model writes one stream of text, side by side on the same machine:

    page (Chromium)     the exported fp32 page opened from disk in headless Chromium (its own timing)
    onnxruntime         examples/onnx_generate.py over the ONNX export (numpy + onnxruntime)
    rnnlm serve         one client streaming from `rnnlm serve` on loopback (--threads as given)

Each writes ``--tokens`` tokens greedily after the same prime, one stream at a time.

    .venv/bin/python benchmarks/export.py runs/demo runs/nietzsche
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from benchmarks.common import machine, table
from benchmarks.serving import Result, one_request
from rnnlm.export.onnx_graphs import export_onnx
from rnnlm.export.page import export_page
from rnnlm.runfolder import load_run
from tests.exporting import chromium_or_skip
from tests.serving import ServerProcess


def page_speed(path: Path, prime: str, tokens: int, repeats: int) -> float:
    """Tokens per second of the page's own generation in headless Chromium (best of ``repeats``)."""
    sync_api = chromium_or_skip()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.rnnlmExport && window.rnnlmExport.ready", timeout=120000)
        rates = [page.evaluate("(o) => window.rnnlmExport.generate(o).then(r => r.tokens / r.seconds)",
                               {"prime": prime, "length": tokens, "greedy": True}) for _ in range(repeats)]
        browser.close()
    return max(rates)


def onnx_speed(folder: Path, prime: str, tokens: int, repeats: int) -> float:
    import onnx_generate

    model = onnx_generate.Model(folder)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        written = sum(1 for _ in model.generate(prime, tokens, greedy=True))
        rates.append(written / (time.perf_counter() - start))
    return max(rates)


def server_speed(run: Path, prime: str, tokens: int, repeats: int, threads: int) -> float:
    """Tokens per second of one client streaming from ``rnnlm serve`` (best of ``repeats``)."""
    server = ServerProcess(str(run), "--threads", str(threads), "--max-tokens", str(tokens))
    body = json.dumps({"model": run.name, "prompt": prime, "max_tokens": tokens, "temperature": 0,
                       "stream": True}).encode()
    try:
        rates = []
        for _ in range(repeats):
            result = Result()
            start = time.perf_counter()
            asyncio.run(one_request([], server.port, body, result))
            rates.append(result.tokens / (time.perf_counter() - start))
    finally:
        server.stop()
    return max(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--prime", default="", help="the prime of every stream (empty: as the model starts on its own)")
    p.add_argument("--tokens", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    args = p.parse_args()
    sizes, speeds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in args.runs:
            run = load_run(folder, device="cpu")
            row = [folder.name, f"{run.tokenizer.level}, {run.config.model.cell} {run.config.model.layers}x"
                                f"{run.config.model.hidden}"]
            pages = {}
            for fmt in ("fp32", "fp16", "int8"):
                done = pages[fmt] = export_page(run, Path(tmp) / f"{folder.name}-{fmt}.html", fmt)
                cost = done.cost
                bits = "" if cost.bits_per_char is None else \
                    f" {cost.compressed_bits_per_char - cost.bits_per_char:+.4f}, greedy {cost.greedy_agree}/" \
                    f"{cost.greedy_tokens}"
                row.append(f"{done.bytes / 1e6:.2f} MB{bits}")
            base = pages["fp16"].cost.bits_per_char
            sizes.append(row + [f"{base:.4f}" if base is not None else "-"])
            onnx = export_onnx(run, Path(tmp) / f"{folder.name}-onnx").folder
            page = pages["fp32"].path
            served = server_speed(folder.resolve(), args.prime, args.tokens, args.repeats, args.threads)
            speeds.append([folder.name, f"{page_speed(page, args.prime, args.tokens, args.repeats):.0f}",
                           f"{onnx_speed(onnx, args.prime, args.tokens, args.repeats):.0f}", f"{served:.0f}"])
    print(f"# Exported pages ({machine()})\n")
    print(table(["run", "model", "fp32 page", "fp16 page (bits/char cost)", "int8 page (bits/char cost)",
                 "bits/char fp32"], sizes))
    print(f"\n# One stream, {args.tokens} greedy tokens, tokens/s (best of {args.repeats})\n")
    print(table(["run", "page (Chromium)", "onnxruntime", f"rnnlm serve ({args.threads} threads)"], speeds))


if __name__ == "__main__":
    main()
