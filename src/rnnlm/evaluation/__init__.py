"""Measuring a model: loss, perplexity, bits per token and per character, accuracy on a token
stream (``streams``), and a trained run on its validation split or any text (``runs``)."""
