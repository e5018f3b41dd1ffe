"""Validation streams warm up on the tokens before their start, so that many streams read a split
as one stream does."""

import numpy as np
import pytest
import torch

from rnnlm.config import ModelConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import build_text_data
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.evaluation.streams import (MIN_STREAM_TOKENS, WARMUP_TOKENS, EvalStreams, evaluate_stream,
                                      stream_batches_for_eval)
from rnnlm.models import RecurrentLM
from rnnlm.runfolder import load_run


def test_each_stream_but_the_first_reads_the_tokens_before_it():
    ids = np.arange(101)
    batches = EvalStreams(ids, 4, 5, warmup=3)  # streams of 25 tokens
    assert batches.warm.tolist() == [False, True, True, True]
    assert batches.warmup_inputs[1:].tolist() == [[22, 23, 24], [47, 48, 49], [72, 73, 74]]
    assert batches.warmup_tokens == 9
    plain = StreamBatches(ids, 4, 5)
    assert batches.tokens == plain.tokens and len(batches) == len(plain)
    second = batches.shard(1, 2)
    assert second.warm.tolist() == [True, True] and second.warmup_inputs.tolist() == [[47, 48, 49], [72, 73, 74]]
    assert EvalStreams(ids, 4, 5, warmup=1000).warmup_inputs.shape == (4, 25)  # at most the stream before
    assert not EvalStreams(ids, 4, 5, warmup=0).warm.any()
    assert not EvalStreams(ids, 1, 5).warm.any()


def test_a_short_split_is_read_as_fewer_streams_that_warm_up_whole():
    """A state may remember thousands of tokens: a split too short for its streams to be that long
    is read as fewer of them, each with the whole warm-up before it."""
    short = stream_batches_for_eval(np.arange(13_018), 64, 20)
    assert short.bs == 13_017 // MIN_STREAM_TOKENS < 64
    assert short.stream_len >= MIN_STREAM_TOKENS and short.warmup_inputs.shape[1] == WARMUP_TOKENS
    assert stream_batches_for_eval(np.arange(MIN_STREAM_TOKENS), 64, 20).bs == 1
    assert stream_batches_for_eval(np.arange(10**6), 64, 20).bs == 64
    assert stream_batches_for_eval(np.arange(10**6), 64, 20, min_stream=1).bs == 64
    assert stream_batches_for_eval(np.arange(13_018), 64, 20, min_stream=1).bs == 64


def test_many_streams_read_as_one_where_cold_streams_do_not(tiny_run):
    run = load_run(tiny_run, device="cpu")
    ids = build_text_data(run.config.data, vocab=run.vocab, tokenizer=run.tokenizer).valid_ids
    streams = 25
    assert (len(ids) - 1) % streams == 0  # no tail dropped: all three predict the same tokens
    one = evaluate_run(run, streams=1)
    warm = evaluate_run(run, streams=streams)
    cold = evaluate_stream(run.model, stream_batches_for_eval(ids, streams, 16, warmup=0, min_stream=1), run.device)
    assert warm.tokens == cold.tokens == one.tokens == len(ids) - 1  # warm-up tokens are not counted
    assert abs(warm.loss / one.loss - 1) < 0.005
    assert cold.loss / one.loss - 1 > 0.05


def test_shards_warm_up_as_the_whole_does():
    """Under torchrun each rank reads its block of the streams: the first of a block warms up on
    the end of a stream in another block."""
    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(0, 11, size=2001)
    model = RecurrentLM(11, ModelConfig(cell="lstm", layers=2, emb=8, hidden=16, dropout=0.0))
    batches = stream_batches_for_eval(ids, 8, 10, warmup=40, min_stream=1)
    whole = evaluate_stream(model, batches, torch.device("cpu"))
    parts = [evaluate_stream(model, batches.shard(rank, 3), torch.device("cpu")) for rank in range(3)]
    assert sum(p.tokens for p in parts) == whole.tokens
    assert sum(p.loss * p.tokens for p in parts) / whole.tokens == pytest.approx(whole.loss, rel=1e-6)
    assert evaluate_stream(model, stream_batches_for_eval(ids, 8, 10, warmup=0, min_stream=1), torch.device("cpu")).loss != \
        pytest.approx(whole.loss, rel=1e-6)


def test_a_sample_of_a_long_split_is_spread_over_all_of_it():
    """A run's validation of a split too long to read whole reads the beginning of each stream's
    part of it, each warmed up as in a whole pass: a sample of the whole split, not its start."""
    ids = np.arange(100_001)
    whole = stream_batches_for_eval(ids, 8, 10, min_stream=1_000)
    sample = stream_batches_for_eval(ids, 8, 10, min_stream=1_000, tokens=8_800)
    assert sample.bs == whole.bs == 8 and sample.tokens == 8_800
    assert sample.inputs[:, 0].tolist() == whole.inputs[:, 0].tolist() == list(range(0, 100_000, 12_500))
    assert np.array_equal(sample.warmup_inputs, whole.warmup_inputs)  # the tokens before each start
    read = np.concatenate([x.numpy() for x, _ in sample], axis=1)  # (streams, tokens each)
    assert read.tolist() == [list(range(start, start + 1_100)) for start in range(0, 100_000, 12_500)]
    assert np.array_equal(np.concatenate([y.numpy() for _, y in sample], axis=1), read + 1)
    few = stream_batches_for_eval(ids, 8, 10, min_stream=1_000, tokens=3_000)  # streams as long as min_stream
    assert few.bs == 2 and few.tokens == 3_000 and few.inputs[1, 0] == 50_000
    assert stream_batches_for_eval(ids, 8, 10, min_stream=1_000, tokens=10**6).tokens == whole.tokens
