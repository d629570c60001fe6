"""`drift --shard I/N`: each institution in exactly one shard, and it stays there."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from provisioner.drift import Shard, shard_of

CODES = [f"inst-{i:04d}" for i in range(2000)]


def test_every_institution_is_in_exactly_one_shard() -> None:
    for total in (1, 2, 3, 7):
        shards = [Shard(i, total) for i in range(1, total + 1)]
        for code in CODES[:300]:
            assert sum(s.holds(code) for s in shards) == 1


def test_adding_institutions_moves_none_of_the_others() -> None:
    before = {code: shard_of(code, 4) for code in CODES[:1000]}
    after = {code: shard_of(code, 4) for code in [*CODES, "mosa", "gva-opera"]}
    assert all(after[code] == shard for code, shard in before.items())


def test_the_split_is_even_enough_for_parallel_jobs() -> None:
    counts = Counter(shard_of(code, 4) for code in CODES)
    assert sorted(counts) == [1, 2, 3, 4]
    assert max(counts.values()) - min(counts.values()) < 0.1 * len(CODES) / 4


def test_platform_records_belong_to_the_first_shard() -> None:
    assert Shard(1, 3).holds(None) and not Shard(2, 3).holds(None)


@pytest.mark.parametrize(("text", "said"), [
    ("0/2", "two numbers from 1"), ("3/2", "I must be at most N (2)"),
    ("1/0", "N, the number of shards, must be at least 1"), ("a/b", "is not I/N"),
    ("1-2", "is not I/N"), ("", "is not I/N"), (" 1/2", "is not I/N"), ("01/02", "is not I/N"),
    ("\u0661/\u0662", "is not I/N"), ("-1/2", "is not I/N")])
def test_a_bad_shard_is_refused(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        Shard.parse(text)


def test_a_shard_reads_as_gitlab_writes_it() -> None:
    assert Shard.parse("2/5") == Shard(2, 5) and str(Shard.parse("12/40")) == "12/40"
