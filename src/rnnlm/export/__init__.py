"""A run taken out of Python: ONNX graphs for any runtime (``onnx_graphs``) and one HTML page
that writes with no server (``page``); the tokenizer and draw rules as JSON for both (``spec``),
the page's weights compressed (``weights``), where the files go (``outputs``); the card is the run's own (``rnnlm.card``)."""
