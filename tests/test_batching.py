import numpy as np
import pytest
import torch

from rnnlm.data.batching import StreamBatches


@pytest.mark.parametrize("n,bs,bptt", [(1000, 7, 13), (65, 8, 8), (10, 3, 100), (2, 1, 1), (101, 10, 10)])
def test_every_token_once_except_the_short_tail(n, bs, bptt):
    ids = np.arange(n, dtype=np.uint32)
    batches = StreamBatches(ids, bs, bptt)
    xs = torch.cat([x for x, _ in batches], dim=1)
    ys = torch.cat([y for _, y in batches], dim=1)
    assert torch.equal(ys, xs + 1)  # targets are the inputs shifted by one
    inputs = sorted(xs.flatten().tolist())
    assert inputs == list(range(len(inputs)))  # no repeats, no gaps
    assert n - 1 - len(inputs) < bs  # only the tail shorter than bs is lost
    assert all(x.shape[1] <= bptt for x, _ in batches)


def test_rows_continue_from_one_batch_to_the_next():
    ids = np.arange(64 * 10 + 1)
    (x1, _), (x2, _) = list(StreamBatches(ids, 64, 5))
    assert torch.equal(x2[:, 0], x1[:, -1] + 1)
    assert torch.equal(x1[1, 0] - x1[0, 0], torch.tensor(10))  # 64 contiguous streams of 10 tokens


def test_works_on_a_memory_map(tmp_path):
    path = tmp_path / "ids.bin"
    np.arange(500, dtype=np.uint16).tofile(path)
    ids = np.memmap(path, dtype=np.uint16, mode="r")
    x, y = next(iter(StreamBatches(ids, 4, 6)))
    assert x.dtype == torch.int64 and x.tolist()[0] == list(range(6))


def test_too_short_gives_no_batches():
    assert len(StreamBatches(np.arange(3), 8, 4)) == 0
