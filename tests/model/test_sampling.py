"""Sampling functions against their definitions; seeded, per-row reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from model import SamplingParams, generate, make_generator, select_tokens, token_logprobs, top_logprobs
from model.sampling import apply_repetition_penalty, apply_temperature, sample_from, top_k_top_p_filter

from .helpers import make_model, random_ids


def _logits(B: int, V: int, seed: int = 0) -> Tensor:
    return torch.randn(B, V, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_is_argmax() -> None:
    logits = _logits(5, 50)
    tokens = select_tokens(logits, [SamplingParams()] * 5, [None] * 5)
    assert torch.equal(tokens, logits.argmax(-1))


def test_temperature_divides_the_logits() -> None:
    logits = _logits(2, 10)
    out = apply_temperature(logits, torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(out, torch.stack([logits[0] / 0.5, logits[1] / 2.0]))


def _reference_filter(logits: Tensor, k: int, p: float) -> Tensor:
    """Keep the k most likely tokens, then the smallest set (in order of probability) whose
    probability, renormalised over the kept tokens, reaches p; mask the rest with -inf."""
    order = logits.argsort(descending=True).tolist()
    kept = order[:k] if k > 0 else order
    probs = torch.softmax(logits[kept], dim=-1).tolist()
    total, nucleus = 0.0, []
    for token, prob in zip(kept, probs, strict=True):
        nucleus.append(token)
        total += prob
        if total >= p:
            break
    out = torch.full_like(logits, float("-inf"))
    out[nucleus] = logits[nucleus]
    return out


@pytest.mark.parametrize(("k", "p"), [(0, 1.0), (1, 1.0), (5, 1.0), (0, 0.3), (0, 0.9), (8, 0.6), (3, 0.99)])
def test_top_k_top_p_match_their_definition(k: int, p: float) -> None:
    logits = _logits(6, 40, seed=k)
    out = top_k_top_p_filter(logits, torch.full((6,), k), torch.full((6,), p))
    for row in range(6):
        expected = _reference_filter(logits[row], k, p)
        assert torch.equal(torch.isinf(out[row]), torch.isinf(expected)), (k, p, row)
        torch.testing.assert_close(out[row][~torch.isinf(out[row])], expected[~torch.isinf(expected)])
    if k:
        assert int((~torch.isinf(out)).sum(-1).max()) <= k


def test_top_p_on_a_known_distribution() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = {}
    for p in (0.4, 0.75, 0.85, 0.97, 1.0):
        out = top_k_top_p_filter(logits, torch.tensor([0]), torch.tensor([p]))
        kept[p] = int((~torch.isinf(out)).sum())
    assert kept == {0.4: 1, 0.75: 2, 0.85: 3, 0.97: 4, 1.0: 4}


def test_filter_parameters_are_per_row() -> None:
    logits = _logits(3, 20).clone()
    out = top_k_top_p_filter(logits, torch.tensor([1, 0, 4]), torch.tensor([1.0, 1.0, 1.0]))
    assert (~torch.isinf(out)).sum(-1).tolist() == [1, 20, 4]


def test_repetition_penalty_follows_ctrl() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0], [2.0, -2.0, 1.0, -1.0]])
    seen = [torch.tensor([0, 1]), None]
    out = apply_repetition_penalty(logits.clone(), seen, [2.0, 2.0])
    # Seen tokens: positive logits divided, negative multiplied; unseen and unseen rows unchanged.
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0], [2.0, -2.0, 1.0, -1.0]]


def test_repetition_penalty_changes_the_greedy_choice() -> None:
    logits = torch.tensor([[3.0, 2.0, 0.0]])
    plain = select_tokens(logits, [SamplingParams()], [None], [torch.tensor([0])])
    penalised = select_tokens(logits, [SamplingParams(repetition_penalty=2.0)], [None], [torch.tensor([0])])
    assert plain.tolist() == [0] and penalised.tolist() == [1]
    assert logits.tolist() == [[3.0, 2.0, 0.0]]  # the caller's logits are left alone


def test_sample_from_draws_from_the_distribution() -> None:
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1, 0.0])
    n = 20_000
    gen = torch.Generator().manual_seed(0)
    draws = sample_from(probs.expand(n, 5).clone(), [gen] * n)
    freq = torch.bincount(draws, minlength=5).float() / n
    assert freq[4] == 0  # a zero-probability token is never drawn
    # Four standard deviations of a binomial frequency (at most 0.0036 here).
    assert torch.all((freq - probs).abs() < 4 * torch.sqrt(probs * (1 - probs) / n) + 1e-9), freq


def test_temperature_sampling_frequencies() -> None:
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    params = [SamplingParams(do_sample=True, temperature=2.0)]
    gen = make_generator(1)
    counts = torch.zeros(3)
    for _ in range(3000):
        counts[select_tokens(logits, params, [gen])[0]] += 1
    expected = torch.softmax(logits[0] / 2.0, dim=-1)
    assert torch.all((counts / 3000 - expected).abs() < 0.04), counts


def test_low_temperature_and_top_k_1_are_greedy() -> None:
    logits = _logits(4, 30, seed=3)
    for params in (SamplingParams(do_sample=True, temperature=1e-4), SamplingParams(do_sample=True, top_k=1),
                   SamplingParams(do_sample=True, top_p=1e-6)):
        gens = [make_generator(i) for i in range(4)]
        assert torch.equal(select_tokens(logits, [params] * 4, list(gens)), logits.argmax(-1))


def test_same_seed_same_sample() -> None:
    logits = _logits(1, 200) / 6  # a flat distribution: draws vary
    params = [SamplingParams(do_sample=True, seed=7)]
    first = [int(select_tokens(logits, params, [make_generator(7)])[0]) for _ in range(5)]
    assert len(set(first)) == 1
    gen_a, gen_b = make_generator(7), make_generator(7)
    seq_a = [int(select_tokens(logits, params, [gen_a])[0]) for _ in range(20)]
    seq_b = [int(select_tokens(logits, params, [gen_b])[0]) for _ in range(20)]
    assert seq_a == seq_b and len(set(seq_a)) > 3  # reproducible, and really random
    other = [int(select_tokens(logits, params, [g])[0]) for g in [make_generator(8)] * 20]
    assert other != seq_a


def test_a_seeded_row_is_independent_of_its_batch() -> None:
    V = 100
    row = _logits(1, V, seed=11)[0]
    mine = SamplingParams(do_sample=True, temperature=0.9, top_k=50, top_p=0.95, seed=3)
    gen = make_generator(3)
    solo = [int(select_tokens(row.unsqueeze(0), [mine], [gen])[0]) for _ in range(10)]

    others = _logits(3, V, seed=12)
    gens: list[torch.Generator | None] = [make_generator(100), None, make_generator(3), make_generator(200)]
    params = [SamplingParams(do_sample=True, temperature=1.5), SamplingParams(), mine,
              SamplingParams(do_sample=True, top_p=0.5, repetition_penalty=1.3)]
    seen: list[Tensor | None] = [None, None, None, torch.tensor([1, 2, 3])]
    batched = []
    for _ in range(10):
        logits = torch.stack([others[0], others[1], row, others[2]])
        batched.append(int(select_tokens(logits, params, gens, seen)[2]))
    assert batched == solo


def test_generate_with_a_seed_is_reproducible() -> None:
    model = make_model()
    prompt = random_ids(4, model.cfg.vocab_size, 1)
    params = SamplingParams(do_sample=True, temperature=1.2, seed=42)
    a, b = generate(model, prompt, 16, params), generate(model, prompt, 16, params)
    assert a == b
    c = generate(model, prompt, 16, SamplingParams(do_sample=True, temperature=1.2, seed=43))
    assert c != a


def test_token_logprobs_are_log_softmax() -> None:
    logits = _logits(3, 17)
    tokens = torch.tensor([0, 5, 16])
    expected = [math.log(float(torch.softmax(logits[i], -1)[t])) for i, t in enumerate(tokens.tolist())]
    torch.testing.assert_close(token_logprobs(logits, tokens), torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_top_logprobs() -> None:
    logits = _logits(2, 30)
    values, ids = top_logprobs(logits, 4)
    assert values.shape == ids.shape == (2, 4)
    logp = logits.log_softmax(-1)
    for row in range(2):
        assert ids[row].tolist() == logp[row].argsort(descending=True)[:4].tolist()
        assert values[row].tolist() == sorted(values[row].tolist(), reverse=True)
        torch.testing.assert_close(values[row], logp[row, ids[row]])
        torch.testing.assert_close(token_logprobs(logits[row:row + 1], ids[row, :1]), values[row, :1])
    assert float(values.exp().sum(-1).max()) <= 1.0 + 1e-6


def test_logprobs_of_half_precision_logits_are_float32() -> None:
    logits = _logits(2, 10).bfloat16()
    assert token_logprobs(logits, torch.tensor([1, 2])).dtype == torch.float32
    assert top_logprobs(logits, 2)[0].dtype == torch.float32


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1},
                                 {"repetition_penalty": 0.0}])
def test_sampling_params_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**bad)  # type: ignore[arg-type]


def test_unseeded_generators_differ() -> None:
    a, b = make_generator(None), make_generator(None)
    assert a.initial_seed() != b.initial_seed()
    assert make_generator(5).initial_seed() == 5
