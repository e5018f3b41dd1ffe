"""A run taken out of Python: ONNX graphs for any runtime (``onnx_graphs``) and one HTML page
that writes with no server (``page``); the tokenizer and draw rules as JSON for both (``spec``),
the page's weights compressed (``weights``), its card (``card``), where the files go (``outputs``)."""
