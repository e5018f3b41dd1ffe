"""The ``rnnlm`` command line: one module per command, over the API."""

from rnnlm.cli.main import build_parser, entry, main
from rnnlm.cli.options import config_from_args

__all__ = ["build_parser", "config_from_args", "entry", "main"]
