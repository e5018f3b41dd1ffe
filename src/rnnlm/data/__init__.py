"""Text in, token ids out: tokenizers (``tokenizers``), vocab (``vocab``), corpora (``corpus``,
``datasets``), batching (``batching``). Import from the modules themselves: this package imports
nothing, so that reading the list of datasets does not load torch."""
