"""Text in, token ids out: tokenizers, vocab, corpora, batching."""

from rnnlm.data.batching import StreamBatches
from rnnlm.data.corpus import Corpus, load_corpus
from rnnlm.data.textdata import TextData, build_text_data, build_vocab
from rnnlm.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer, make_tokenizer
from rnnlm.data.vocab import Vocab

__all__ = [
    "CharTokenizer",
    "Corpus",
    "StreamBatches",
    "TextData",
    "Tokenizer",
    "Vocab",
    "WordTokenizer",
    "build_text_data",
    "build_vocab",
    "load_corpus",
    "make_tokenizer",
]
