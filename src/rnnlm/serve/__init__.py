"""``rnnlm serve``: an OpenAI-compatible HTTP API over the generation session, continuous
batching (one worker thread per model) and a web playground (``static/``)."""
