"""Streaming byte-level text: a token's bytes are held until they form whole UTF-8 characters.

``BpeTokenizer.stream_decoder(vocab)`` gives one for a single stream of token ids (the character
and word levels have theirs in ``rnnlm.data.tokenizers``). ``feed(token_id)`` returns the text
that token completes (maybe ""), so a character split over tokens comes out once, complete;
``flush()`` returns what is left at the end, bytes that never formed a character as U+FFFD.
Joined, what they return is ``decode`` of the ids.
"""

from __future__ import annotations

import codecs


class ByteStream:
    """Byte-level tokens: ``token_bytes[id]`` are the bytes of token ``id``."""

    def __init__(self, token_bytes: list[bytes]):
        self.token_bytes = token_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, token_id: int) -> str:
        return self.decoder.decode(self.token_bytes[token_id])

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)
