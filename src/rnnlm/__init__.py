"""rnnlm: train, measure and sample recurrent language models."""

__version__ = "0.1.0"
