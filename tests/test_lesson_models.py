import pytest
import torch

from rnnlm.lessons import models as m

V = 30
WINDOW_MODELS = [m.Char3Model, m.CharLoopModel, m.CharLoopConcatModel, m.CharRnn]
SEQUENCE_MODELS = [m.CharSeqRnn, m.CharSeqStatefulRnn, m.CharSeqStatefulRnn2, m.CharSeqStatefulGRU,
                   m.CharSeqStatefulLSTM]
HUMAN_NUMBERS = [m.Model0, m.Model1, m.Model2, m.Model3, m.Model4, m.Model5]
STATEFUL = [m.CharSeqStatefulRnn, m.CharSeqStatefulRnn2, m.CharSeqStatefulGRU, m.CharSeqStatefulLSTM,
            m.Model3, m.Model4, m.Model5]


def small(cls):
    return cls(V, nh=16) if cls in HUMAN_NUMBERS else cls(V, n_fac=6, n_hidden=16)


@pytest.mark.parametrize("cls", WINDOW_MODELS + [m.Model0, m.Model1], ids=lambda c: c.__name__)
def test_window_models_predict_one_token_after_the_window(cls):
    x = torch.randint(0, V, (5, 3))
    assert small(cls)(x).shape == (5, V)


@pytest.mark.parametrize("cls", SEQUENCE_MODELS + [m.Model2, m.Model3, m.Model4, m.Model5],
                         ids=lambda c: c.__name__)
def test_sequence_models_predict_after_every_token(cls):
    x = torch.randint(0, V, (5, 8))
    assert small(cls)(x).shape == (5, 8, V)


def test_char3_is_the_loop_unrolled():
    """Same weights, same answers: CharLoopModel over 3 characters is Char3Model."""
    torch.manual_seed(0)
    unrolled, loop = m.Char3Model(V, 6, 16), m.CharLoopModel(V, 6, 16)
    loop.load_state_dict(unrolled.state_dict())
    x = torch.randint(0, V, (4, 3))
    assert torch.allclose(unrolled(x), loop(x), atol=1e-6)


@pytest.mark.parametrize("cls", STATEFUL, ids=lambda c: c.__name__)
def test_stateful_models_carry_detached_state_and_reset_on_a_new_batch_size(cls):
    torch.manual_seed(0)
    model = small(cls).eval()
    a, b = torch.randint(0, V, (4, 6)), torch.randint(0, V, (4, 6))
    model(a)
    after_a = model(b)
    state = model.h[0] if isinstance(model.h, tuple) else model.h
    assert state.shape[-2] == 4 and not state.requires_grad  # kept, without its history
    model.reset()
    fresh = model(b)
    assert (after_a - fresh).abs().max() > 1e-4  # what came before b changed the answer
    model(torch.randint(0, V, (3, 6)))  # batch size changed: starts again from zeros
    state = model.h[0] if isinstance(model.h, tuple) else model.h
    assert state.shape[-2] == 3
    model.reset()
    model(a)
    assert torch.allclose(model(b), after_a, atol=1e-6)  # same history, same answer


def test_stateful_backprop_stops_at_the_batch_boundary():
    model = m.CharSeqStatefulGRU(V, 6, 16)
    model(torch.randint(0, V, (2, 5))).sum().backward()
    model.zero_grad()
    model(torch.randint(0, V, (2, 5))).sum().backward()  # would fail if the graph reached batch 1
    assert model.e.weight.grad is not None


def test_identity_init_sets_the_hidden_to_hidden_matrix():
    model = m.CharSeqRnn(V, 6, 16, identity_init=True)
    assert torch.equal(model.rnn.weight_hh_l0.detach(), torch.eye(16))
    assert not torch.equal(m.CharSeqRnn(V, 6, 16).rnn.weight_hh_l0.detach(), torch.eye(16))


def test_lstm_is_two_layers_of_512_with_dropout_by_default():
    model = m.CharSeqStatefulLSTM(V)
    assert (model.rnn.num_layers, model.rnn.hidden_size, model.rnn.dropout) == (2, 512, 0.5)
    model(torch.randint(0, V, (3, 4)))
    assert [t.shape for t in model.h] == [(2, 3, 512), (2, 3, 512)]


def test_flat_batch_norm_normalises_every_step_of_every_sequence():
    bn = m.BatchNormFlat(5)
    x = torch.randn(4, 7, 5) * 3 + 2
    y = bn(x)
    flat = y.reshape(-1, 5)
    assert y.shape == x.shape
    assert flat.mean(0).abs().max() < 1e-5 and (flat.std(0, unbiased=False) - 1).abs().max() < 1e-3


def test_state_is_created_where_the_input_lives():
    model = m.Model3(V, nh=8)
    out = model(torch.randint(0, V, (2, 3)))
    assert out.device.type == "cpu" and model.h.device.type == "cpu"
