"""Streaming decoders: text out as tokens come, each token's text once it is whole.

``tokenizer.stream_decoder(vocab, prime)`` gives one for a single stream of generated token ids
that follows the text ``prime``. ``feed(token_id)`` returns the text that token completes (maybe
""), ``flush()`` what is left at the end. Joined, prime + everything returned is the text of
the stream, as ``decode`` and the generation functions' ``join_prime`` write it:

- character level: each token's character (``xxunk`` as U+FFFD, the other specials as nothing);
- word level: tokens separated by spaces, and by one from a prime;
- byte-level BPE: a token's bytes are held until they form whole UTF-8 characters, so a
  character split over tokens comes out once, complete; bytes that can never form one come out
  as U+FFFD.
"""

from __future__ import annotations

import codecs
from typing import Callable, Protocol

from rnnlm.data.vocab import Vocab


class StreamDecoder(Protocol):
    def feed(self, token_id: int) -> str: ...

    def flush(self) -> str: ...


class PieceStream:
    """Each token stands for its own piece of text (character level)."""

    def __init__(self, piece: Callable[[str], str], vocab: Vocab):
        self.piece, self.itos = piece, vocab.itos

    def feed(self, token_id: int) -> str:
        return self.piece(self.itos[token_id])

    def flush(self) -> str:
        return ""


class WordStream:
    """Tokens written out with a space between them, and before the first when text precedes it."""

    def __init__(self, vocab: Vocab, after_text: bool):
        self.itos, self.started = vocab.itos, after_text

    def feed(self, token_id: int) -> str:
        text = (" " if self.started else "") + self.itos[token_id]
        self.started = True
        return text

    def flush(self) -> str:
        return ""


class ByteStream:
    """Byte-level tokens: ``token_bytes[id]`` are the bytes of token ``id``."""

    def __init__(self, token_bytes: list[bytes]):
        self.token_bytes = token_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, token_id: int) -> str:
        return self.decoder.decode(self.token_bytes[token_id])

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)
