"""Incremental decoding with the slot-based KV cache: prefill, decode and generate."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from model import KVCache, ModelConfig, SamplingParams, Transformer, decode, generate, prefill

from .helpers import TINY, full_logits, make_model, random_ids

CONFIGS = {
    "pre-LN sinusoidal": TINY,
    # Untied: a tied head over scaled random embeddings just repeats the last token.
    "pre-LN sinusoidal scaled untied": TINY.replace(scale_embeddings=True, tie_embeddings=False),
    "post-LN learned gelu untied": TINY.replace(
        norm_position="post", pos_encoding="learned", activation="gelu", final_norm=False,
        tie_embeddings=False),
}


def greedy(logits: Tensor) -> Tensor:
    return logits.argmax(dim=-1)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cached_decoding_equals_the_full_forward(name: str) -> None:
    model = make_model(CONFIGS[name])
    ids = random_ids(30, model.cfg.vocab_size, 0)
    expected = full_logits(model, ids)  # (30, V)
    cache = model.new_cache(1, 40)
    with torch.no_grad():
        steps = [prefill(model, [ids[:8]], cache)]
        for pos in range(8, 30):
            steps.append(decode(model, torch.tensor([ids[pos]]), torch.tensor([pos]), cache, pos + 1))
    got = torch.cat(steps)  # logits after tokens 7, 8, ..., 29
    torch.testing.assert_close(got, expected[7:], atol=1e-5, rtol=0)


def test_chunked_prefill_equals_one_prefill() -> None:
    model = make_model()
    ids = random_ids(25, TINY.vocab_size, 1)
    whole = full_logits(model, ids)[-1]
    cache = model.new_cache(1, 32)
    with torch.no_grad():
        prefill(model, [ids[:10]], cache)
        prefill(model, [ids[10:17]], cache, start=[10])
        last = prefill(model, [ids[17:]], cache, start=[17])
    torch.testing.assert_close(last[0], whole, atol=1e-5, rtol=0)


def test_prefill_returns_each_rows_last_logits() -> None:
    model = make_model()
    prompts = [random_ids(n, TINY.vocab_size, 10 + n) for n in (3, 12, 1, 7)]
    cache = model.new_cache(4, 16)
    with torch.no_grad():
        logits = prefill(model, prompts, cache)
    assert logits.shape == (4, TINY.vocab_size)
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(logits[row], full_logits(model, prompt)[-1], atol=1e-5, rtol=0)


class Running:
    """A minimal engine: sequences in slots 0..B-1, greedy, one decode call per step for all."""

    def __init__(self, model: Transformer, cache: KVCache) -> None:
        self.model, self.cache = model, cache
        self.prompts: list[list[int]] = []
        self.out: list[list[int]] = []
        self.logits: Tensor | None = None  # the last step's logits (B, V)

    def lengths(self) -> list[int]:  # tokens in the cache per slot
        return [len(p) + len(o) - 1 for p, o in zip(self.prompts, self.out, strict=True)]

    def add(self, prompts: list[list[int]]) -> None:
        first = len(self.prompts)
        with torch.no_grad():
            tokens = greedy(prefill(self.model, prompts, self.cache, first_slot=first)).tolist()
        self.prompts += prompts
        self.out += [[t] for t in tokens]

    def step(self) -> None:
        positions = self.lengths()
        last = torch.tensor([o[-1] for o in self.out])
        with torch.no_grad():
            logits = decode(self.model, last, torch.tensor(positions), self.cache, max(positions) + 1)
        self.logits = logits
        for row, token in enumerate(greedy(logits).tolist()):
            self.out[row].append(token)

    def remove(self, slot: int) -> list[int]:
        """Drop a finished sequence; the last slot moves into its place to keep slots contiguous."""
        done = self.out[slot]
        last = len(self.prompts) - 1
        if slot != last:
            self.cache.move_slot(last, slot, self.lengths()[last])
            self.prompts[slot], self.out[slot] = self.prompts[last], self.out[last]
        self.prompts.pop()
        self.out.pop()
        return done


def alone(model: Transformer, prompt: list[int], n: int) -> list[int]:
    return generate(model, prompt, n)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mixed_length_batch_decodes_like_each_prompt_alone(name: str) -> None:
    model = make_model(CONFIGS[name])
    prompts = [random_ids(n, model.cfg.vocab_size, 20 + n) for n in (5, 1, 13, 8)]
    run = Running(model, model.new_cache(4, 48))
    run.add(prompts)
    for _ in range(19):
        run.step()
    for prompt, out in zip(prompts, run.out, strict=True):
        assert len(out) == 20
        assert out == alone(model, prompt, 20)
        assert len(set(out)) >= 3  # not a degenerate repeat of one token
    assert len({tuple(o) for o in run.out}) == 4  # the rows really differ
    assert run.logits is not None
    for row, (prompt, out) in enumerate(zip(prompts, run.out, strict=True)):
        expected = full_logits(model, [*prompt, *out[:-1]])[-1]
        torch.testing.assert_close(run.logits[row], expected, atol=1e-5, rtol=0)


def test_batched_decode_logits_match_each_sequence_alone() -> None:
    model = make_model()
    a, b = random_ids(4, TINY.vocab_size, 30), random_ids(11, TINY.vocab_size, 31)
    cache = model.new_cache(2, 16)
    with torch.no_grad():
        prefill(model, [a, b], cache)
        nxt = torch.tensor([7, 9])
        logits = decode(model, nxt, torch.tensor([4, 11]), cache, 12)
    torch.testing.assert_close(logits[0], full_logits(model, [*a, 7])[-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[1], full_logits(model, [*b, 9])[-1], atol=1e-5, rtol=0)


def test_bf16_batched_decode_matches_each_sequence_in_fp32() -> None:
    """bf16 with the cache's strided views (too few rows for the decode kernel, which has its own tests)."""
    model = make_model()
    prompts = [random_ids(n, TINY.vocab_size, 40 + n) for n in (4, 11, 7)]
    nxt = [7, 9, 3]
    half = make_model().to(torch.bfloat16)
    cache = half.new_cache(3, 16)
    with torch.no_grad():
        prefill(half, prompts, cache)
        logits = decode(half, torch.tensor(nxt), torch.tensor([len(p) for p in prompts]), cache, 12)
    for row, (prompt, token) in enumerate(zip(prompts, nxt, strict=True)):
        expected = full_logits(model, [*prompt, token])[-1]
        assert torch.nn.functional.cosine_similarity(logits[row].float(), expected, dim=0) > 0.999


def test_removing_and_moving_slots_keeps_results() -> None:
    model = make_model()
    prompts = [random_ids(n, TINY.vocab_size, 40 + n) for n in (6, 3, 9, 4)]
    expected = [alone(model, p, 16) for p in prompts]
    run = Running(model, model.new_cache(4, 32))
    run.add(prompts)
    for _ in range(5):
        run.step()
    finished = {0: run.remove(1)[:6]}  # sequence 1 leaves; sequence 3 moves from slot 3 to slot 1
    order = [0, 3, 2]
    for _ in range(10):
        run.step()
    assert finished[0] == expected[1][:6]
    for slot, seq in enumerate(order):
        assert run.out[slot] == expected[seq]


def test_explicit_slots_need_not_be_contiguous() -> None:
    model = make_model()
    prompts = [random_ids(n, TINY.vocab_size, 80 + n) for n in (4, 9)]
    expected = [alone(model, p, 8) for p in prompts]
    cache = model.new_cache(5, 24)
    slots = [4, 1]
    with torch.no_grad():
        tokens = greedy(prefill(model, prompts, cache, slots=slots))
        out = [[t] for t in tokens.tolist()]
        for step in range(7):
            positions = torch.tensor([len(p) + step for p in prompts])
            tokens = greedy(decode(model, tokens, positions, cache, int(positions.max()) + 1, slots=slots))
            for row, t in enumerate(tokens.tolist()):
                out[row].append(t)
    assert out == expected
    assert torch.all(cache.k[:, [0, 2, 3]] == 0)  # the other slots are untouched


def test_move_slot_copies_only_the_given_length() -> None:
    cache = KVCache(n_layers=2, n_heads=1, head_dim=2, max_batch=3, max_seq_len=5)
    cache.k[:, 2].fill_(1.0)
    cache.v[:, 2].fill_(2.0)
    cache.move_slot(2, 0, 3)
    assert torch.all(cache.k[:, 0, :, :3] == 1) and torch.all(cache.v[:, 0, :, :3] == 2)
    assert torch.all(cache.k[:, 0, :, 3:] == 0) and torch.all(cache.k[:, 1] == 0)


def test_a_sequence_can_join_a_running_batch() -> None:
    model = make_model()
    first = [random_ids(7, TINY.vocab_size, 50), random_ids(2, TINY.vocab_size, 51)]
    late = random_ids(10, TINY.vocab_size, 52)
    run = Running(model, model.new_cache(3, 40))
    run.add(first)
    for _ in range(4):
        run.step()
    run.add([late])  # prefilled into slot 2 while slots 0 and 1 are mid-generation
    for _ in range(12):
        run.step()
    assert run.out[0] == alone(model, first[0], 17)
    assert run.out[1] == alone(model, first[1], 17)
    assert run.out[2] == alone(model, late, 13)


def test_chunked_prefill_next_to_a_longer_chunk() -> None:
    # One row finishes its prompt with a short late chunk while a newcomer prefills a long one,
    # packed together: neither may write past its own end nor see the other's keys.
    cfg = TINY.replace(max_seq_len=32)
    model = make_model(cfg)
    a = random_ids(28, cfg.vocab_size, 60)
    b = random_ids(20, cfg.vocab_size, 61)
    cache = model.new_cache(2, 32)
    with torch.no_grad():
        prefill(model, [a[:24]], cache)
        logits = prefill(model, [a[24:], b], cache, start=[24, 0])
    torch.testing.assert_close(logits[0], full_logits(model, a)[-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[1], full_logits(model, b)[-1], atol=1e-5, rtol=0)
    # Nothing was written past either row's end.
    assert torch.all(cache.k[:, 0, :, 28:] == 0) and torch.all(cache.k[:, 1, :, 20:] == 0)
    # And both continue correctly from the cache.
    with torch.no_grad():
        nxt = decode(model, torch.tensor([1, 2]), torch.tensor([28, 20]), cache, 29)
    torch.testing.assert_close(nxt[0], full_logits(model, [*a, 1])[-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(nxt[1], full_logits(model, [*b, 2])[-1], atol=1e-5, rtol=0)


def test_prompt_that_fills_the_cache_in_a_packed_batch() -> None:
    cfg = TINY.replace(max_seq_len=16)
    model = make_model(cfg)
    full, short = random_ids(16, cfg.vocab_size, 62), random_ids(5, cfg.vocab_size, 63)
    cache = model.new_cache(2, 16)
    with torch.no_grad():
        prefill(model, [full[:4], short], cache)
        logits = prefill(model, [full[4:], short[:1]], cache, start=[4, 5])
    torch.testing.assert_close(logits[0], full_logits(model, full)[-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[1], full_logits(model, [*short, short[0]])[-1], atol=1e-5, rtol=0)


def test_prefill_packs_prompts_without_padding() -> None:
    # The model runs exactly the prompts' tokens, one row: no FLOPs spent on padding.
    model = make_model()
    prompts = [random_ids(n, TINY.vocab_size, 80 + n) for n in (2, 11, 5)]
    seen: list[tuple[int, ...]] = []
    model.tok_emb.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        logits = prefill(model, prompts, model.new_cache(3, 16))
    assert seen == [(1, 18)]
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(logits[row], full_logits(model, prompt)[-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("slot", "start", "match"), [(2, 0, "slot 2"), (0, 14, "does not fit")])
def test_prefill_rejects_segments_outside_the_cache(slot: int, start: int, match: str) -> None:
    model = make_model()
    with pytest.raises(ValueError, match=match):
        prefill(model, [[1, 2, 3]], model.new_cache(2, 16), start=[start], slots=[slot])


def test_prefill_rejects_an_empty_prompt() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="at least one token"):
        prefill(model, [[1, 2], []], model.new_cache(2, 8))


def test_generate_stops_after_eos() -> None:
    model = make_model()
    prompt = random_ids(5, TINY.vocab_size, 70)
    free = generate(model, prompt, 12)
    assert len(free) == 12
    k = max(i for i in range(12) if free.index(free[i]) == i)  # the last token that is new at its step
    assert k >= 2
    stopped = generate(model, prompt, 12, eos_token_id=free[k])
    assert stopped == free[: k + 1]


def test_generate_checks_the_context() -> None:
    model = make_model(TINY.replace(max_seq_len=16))
    generate(model, [1] * 6, 10)
    with pytest.raises(ValueError, match="context of 16"):
        generate(model, [1] * 7, 10)


def test_generate_greedy_ignores_sampling_knobs() -> None:
    model = make_model()
    prompt = random_ids(4, TINY.vocab_size, 71)
    knobs = SamplingParams(do_sample=False, temperature=0.3, top_k=3, top_p=0.5, seed=1)
    assert generate(model, prompt, 10, knobs) == generate(model, prompt, 10)


def test_cache_shape_dtype_and_limits() -> None:
    model = make_model()
    cache = model.new_cache(3, 20)
    assert cache.k.shape == (TINY.n_layers, 3, TINY.n_heads, 20, TINY.head_dim)
    assert cache.max_batch == 3 and cache.max_seq_len == 20
    assert cache.nbytes() == 2 * cache.k.numel() * 4 and cache.k.dtype == torch.float32
    assert model.new_cache(1).max_seq_len == TINY.max_seq_len
    with pytest.raises(ValueError, match="exceeds"):
        cache.view(slice(0, 1), 21)
    half = make_model(ModelConfig(vocab_size=11, max_seq_len=8, d_model=8, n_layers=1, n_heads=2, d_ff=8))
    assert half.to(torch.bfloat16).new_cache(1).k.dtype == torch.bfloat16
