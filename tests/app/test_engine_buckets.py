"""Length buckets: how the engine groups mixed-length inputs into padded batches."""

from __future__ import annotations

from app.engine import length_buckets


def test_similar_lengths_share_a_batch_and_padding_stays_bounded() -> None:
    lengths = [100, 12, 98, 11, 97, 40, 10, 41]
    groups = length_buckets(list(range(len(lengths))), lambda i: lengths[i])
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))  # each input exactly once
    for group in groups:
        real = sum(lengths[i] for i in group)
        assert max(lengths[i] for i in group) * len(group) <= 1.25 * real
    assert len(groups) < len(lengths)
    assert length_buckets([100, 12, 98, 11], lambda n: n) == [[100, 98], [12, 11]]


def test_equal_lengths_make_one_batch() -> None:
    assert length_buckets([5, 5, 5, 5], lambda n: n) == [[5, 5, 5, 5]]
    assert length_buckets([], lambda n: n) == []
