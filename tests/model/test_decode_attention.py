"""The CPU decode-attention kernel: each row's query against its own slot's cached keys and values."""

from __future__ import annotations

import math

import pytest
import torch

from model import decode, decode_attention, prefill

from .helpers import TINY, full_logits, make_model, random_ids


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor,
              lengths: torch.Tensor) -> torch.Tensor:
    """softmax(q·Kᵀ/√d)·V row by row, in fp64, over each row's first lengths[b] positions."""
    rows = []
    for b, (slot, n) in enumerate(zip(slots.tolist(), lengths.tolist(), strict=True)):
        keys, values = k[slot, :, :n].double(), v[slot, :, :n].double()  # (nh, n, hs)
        scores = q[b].double() @ keys.transpose(-2, -1) / math.sqrt(q.size(-1))  # (nh, 1, n)
        rows.append(scores.softmax(-1) @ values)
    return torch.stack(rows)  # (B, nh, 1, hs)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_kernel_matches_softmax_attention_over_each_rows_own_length(dtype: torch.dtype, tol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(6, 3, 20, 16, generator=gen).to(dtype)  # (max_batch, nh, S_max, hs)
    v = torch.randn(6, 3, 20, 16, generator=gen).to(dtype)
    q = torch.randn(4, 3, 1, 16, generator=gen).to(dtype)
    slots, lengths = torch.tensor([5, 0, 3, 2]), torch.tensor([1, 20, 7, 13])  # any slots, any lengths
    got = decode_attention.decode_attention(q, k, v, slots, lengths)
    assert got.shape == (4, 3, 1, 16) and got.dtype == dtype
    expected = reference(q, k, v, slots, lengths)
    torch.testing.assert_close(got.double(), expected, atol=tol, rtol=tol)
    # What lies past a row's length (an earlier sequence's keys) changes nothing.
    k[:, :, 13:] = 1e4
    torch.testing.assert_close(decode_attention.decode_attention(q[2:], k, v, slots[2:], lengths[2:]), got[2:])


@pytest.mark.parametrize(("slots", "lengths"), [([0, 6], [1, 1]), ([0, 1], [0, 3]), ([0, 1], [3, 21]), ([0], [1])])
def test_kernel_rejects_slots_and_lengths_outside_the_cache(slots: list[int], lengths: list[int]) -> None:
    k = torch.zeros(6, 3, 20, 16)
    with pytest.raises(ValueError):
        decode_attention.decode_attention(torch.zeros(2, 3, 1, 16), k, k, torch.tensor(slots), torch.tensor(lengths))


def count_kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    kernel = decode_attention.decode_attention

    def counted(*args: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return kernel(*args)

    monkeypatch.setattr(decode_attention, "decode_attention", counted)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_batch_decodes_through_the_kernel_like_each_sequence_alone(dtype: torch.dtype,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_kernel_calls(monkeypatch)
    model = make_model()
    rows = decode_attention.MIN_ROWS + 1
    prompts = [random_ids(3 + 4 * i % 17, TINY.vocab_size, 50 + i) for i in range(rows)]  # 3..19 tokens
    batch = make_model().to(dtype)
    cache = batch.new_cache(rows, 32)
    cache.k.normal_(), cache.v.normal_()  # what earlier sequences left behind
    seqs = [list(p) for p in prompts]
    with torch.no_grad():
        tokens = prefill(batch, prompts, cache).argmax(-1)
        assert not calls  # prompts go through torch's fused kernel
        for _ in range(3):
            for seq, token in zip(seqs, tokens.tolist(), strict=True):
                seq.append(token)
            positions = torch.tensor([len(s) - 1 for s in seqs])
            logits = decode(batch, tokens, positions, cache, int(positions.max()) + 1)
            tokens = logits.argmax(-1)
    assert len(calls) == 3 * TINY.n_layers
    for row, seq in enumerate(seqs):
        expected = full_logits(model, seq)[-1]
        if dtype == torch.float32:
            torch.testing.assert_close(logits[row], expected, atol=1e-5, rtol=0)
        else:
            assert torch.nn.functional.cosine_similarity(logits[row].float(), expected, dim=0) > 0.999


def test_few_rows_stay_on_torchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_kernel_calls(monkeypatch)
    model = make_model()
    cache = model.new_cache(2, 16)
    with torch.no_grad():
        prefill(model, [random_ids(5, TINY.vocab_size, 1), random_ids(9, TINY.vocab_size, 2)], cache)
        decode(model, torch.tensor([3, 4]), torch.tensor([5, 9]), cache, 10)
    assert not calls


def test_for_cpu_fp32_and_bf16_caches_only() -> None:
    rows = decode_attention.MIN_ROWS
    for dtype, supported in [(torch.float32, True), (torch.bfloat16, True), (torch.float16, False)]:
        q, k = torch.zeros(rows, 1, 1, 4, dtype=dtype), torch.zeros(rows, 1, 4, 4, dtype=dtype)
        assert decode_attention.supports(q, k) == supported
        assert not decode_attention.supports(q[1:], k)
