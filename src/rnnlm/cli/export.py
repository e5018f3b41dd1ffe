"""``rnnlm export``: a run as ONNX graphs for any runtime, or as one HTML page that writes with no server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rnnlm.cli.options import add_command

if TYPE_CHECKING:  # imported by the command itself (--help imports no torch)
    from rnnlm.export.onnx_graphs import OnnxExport
    from rnnlm.export.page import PageExport

WEIGHT_FORMATS = ("fp32", "fp16", "int8")  # rnnlm.export.weights.FORMATS (not imported: it imports torch)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", help="take a model out of Python: ONNX, or an HTML page that writes with no server",
                    description="Export a run. --onnx DIR writes step.onnx (one token, the state in and out), "
                                "prompt.onnx (a whole prompt), tokenizer.json and model.json into a new folder, "
                                "checked with onnxruntime against torch; examples/onnx_generate.py writes text with "
                                "them and numpy alone. --html FILE writes one self-contained page (weights, "
                                "tokenizer and forward pass in JavaScript inside) that generates opened from disk.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--onnx", metavar="DIR", default=None, help="write the ONNX export into this new folder")
    p.add_argument("--html", metavar="FILE", default=None, help="write the page to this file")
    p.add_argument("--weights", choices=WEIGHT_FORMATS, default="fp16",
                   help="how the page stores its weights: fp32 (exact), fp16 or int8 (a scale per row); what "
                        "fp16 and int8 cost in bits per character is measured and shown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from rnnlm.errors import SettingError
    from rnnlm.export.onnx_graphs import export_onnx
    from rnnlm.export.outputs import check_new_file, check_new_folder
    from rnnlm.export.page import check_page_output, export_page
    from rnnlm.runfolder import load_run

    if args.onnx is None and args.html is None:
        raise SettingError("onnx", "name what to write: {onnx} DIR, {html} FILE, or both")
    if args.onnx is not None:
        check_new_folder(args.onnx, "onnx")
    if args.html is not None:
        check_new_file(args.html, "html")
    loaded = load_run(args.run, device="cpu")
    if args.html is not None:
        check_page_output(loaded, args.html, args.weights)  # its size, before the ONNX export's work
    if args.onnx is not None:
        print_onnx(export_onnx(loaded, args.onnx), args.run)
    if args.html is not None:
        print_page(export_page(loaded, args.html, args.weights), args.run)


def megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def print_onnx(done: OnnxExport, run: str) -> None:
    from rnnlm.export.onnx_graphs import CHECK_PROMPT, CHECK_STEPS

    files = ", ".join(f"{name} {megabytes(size)}" for name, size in done.sizes.items())
    print(f"rnnlm export: {run} -> {done.folder}/ ({files})")
    print(f"  checked  onnxruntime's logits within {done.difference:.1e} of torch's over a {CHECK_PROMPT}-token "
          f"prompt and {CHECK_STEPS} steps")
    print(f"  write    python examples/onnx_generate.py {done.folder} --prime '...' --greedy   (numpy and onnxruntime "
          "only)")


def print_page(done: PageExport, run: str) -> None:
    cost = done.cost
    print(f"rnnlm export: {run} -> {done.path} ({megabytes(done.bytes)} page, {done.format} weights "
          f"{megabytes(done.weight_bytes)}; fp32 {megabytes(done.fp32_weight_bytes)})")
    if done.format == "fp32":
        print("  cost     none: the page computes with the model's own fp32 weights")
        return
    if cost.bits_per_char is None:
        print(f"  cost     bits per character not measured ({cost.why_not_measured})")
    else:
        print(f"  cost     {cost.bits_per_char:.4f} -> {cost.compressed_bits_per_char:.4f} bits/char on the "
              f"validation split ({cost.compressed_bits_per_char - cost.bits_per_char:+.4f})")
    print(f"  greedy   its greedy text (empty prime) follows fp32's for {cost.greedy_agree} of "
          f"{cost.greedy_tokens} tokens")
