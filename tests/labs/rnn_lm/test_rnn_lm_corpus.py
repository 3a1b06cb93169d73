"""The PTB-format loader, the PTB download (against a local server) and the synthetic grammar."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import write_ptb_folder
from labrunner.labs.rnn_lm import corpus as C

from labrunner.data import DataError
from labrunner.testing import serve_folder

#: A corpus small enough to count by hand: a blank line, spaces around every line, a word
#: ("navy") that only valid has.
TEXT = {
    "train": " the army said <unk> \n\n the taxpayer said N \n",
    "valid": " the navy said \n",
    "test": " the army \n",
}


def write_corpus(folder: Path, names: dict[str, str] | None = None) -> None:
    write_ptb_folder(folder, names, text=TEXT)


def test_tokenize_adds_eos_and_skips_blank_lines():
    assert C.tokenize_lines([" a b ", "", "c"]) == ["a", "b", "<eos>", "c", "<eos>"]


def test_load_folder_builds_the_dictionary_from_train(tmp_path):
    write_corpus(tmp_path)
    corpus = C.load_folder(tmp_path)
    d = corpus.dictionary
    # most frequent first: "the", "said" and <eos> twice each
    assert d.words[:3] == ["<eos>", "said", "the"]
    assert "navy" not in d
    assert d.decode(corpus.valid) == ["the", "<unk>", "said", "<eos>"]
    assert len(corpus.train) == 10
    assert set(corpus.sha256) == {"train.txt", "valid.txt", "test.txt"}


def test_load_folder_names_the_missing_split(tmp_path):
    write_corpus(tmp_path)
    (tmp_path / "valid.txt").unlink()
    with pytest.raises(DataError, match="valid.txt"):
        C.load_folder(tmp_path)


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / 'srv'``."""
    root = tmp_path / "srv"
    root.mkdir()
    with serve_folder(root) as (url, _requests):
        yield root, f"{url}/"


def test_fetch_ptb_downloads_once_with_checksums(http_folder, tmp_path):
    root, url = http_folder
    write_corpus(root, C.PTB_FILES)
    sums = {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in C.PTB_FILES.values()}
    folder = C.fetch_ptb(tmp_path / "cache", url, sums)
    corpus = C.load_folder(folder, C.PTB_FILES)
    assert corpus.sha256 == sums
    (root / "ptb.train.txt").unlink()  # a second fetch is served from the cache
    assert C.fetch_ptb(tmp_path / "cache", url, sums) == folder


def test_fetch_ptb_checksum_mismatch_leaves_no_cache_entry(http_folder, tmp_path):
    root, url = http_folder
    write_corpus(root, C.PTB_FILES)
    with pytest.raises(DataError, match="checksum mismatch"):
        C.fetch_ptb(tmp_path / "cache", url, {"ptb.train.txt": "0" * 64})
    cached = tmp_path / "cache" / "ptb"
    assert not (cached / "ptb.train.txt").exists()
    assert not [p for p in cached.iterdir() if p.name.startswith(".")]


def test_grammar_rows_are_distributions_and_words_are_disjoint():
    g = C.make_grammar(120, 1.0, 0.3)
    assert np.allclose(g.transition.sum(1), 1.0)
    words = [w for ws in g.words for w in ws]
    assert len(words) == len(set(words)) == 120
    assert {"army", "taxpayer", "N", C.EOS} <= set(words)


@pytest.mark.slow
def test_entropy_rate_matches_an_empirical_estimate():
    g = C.make_grammar(150, 1.1, 0.25)
    tokens = C.generate(g, 200_000, np.random.default_rng(1))
    empirical = -C.log_prob(g, tokens) / len(tokens)
    # the per-token log-loss has a standard deviation of about 2 nats: 200k tokens give ~0.005
    assert empirical == pytest.approx(C.entropy_rate(g), abs=0.02)


def test_entropy_rate_of_a_known_chain():
    # two classes alternating deterministically, emissions uniform over 2 and 4 words:
    # H = (ln 2 + ln 4) / 2
    g = C.Grammar(
        transition=np.array([[0.0, 1.0], [1.0, 0.0]]),
        words=(("a", "b"), ("c", "d", "e", "f")),
        emission=(np.full(2, 0.5), np.full(4, 0.25)),
    )
    assert C.entropy_rate(g) == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_synthetic_corpus_is_deterministic_and_ends_sentences():
    a = C.synthetic_corpus(3, 3000, 80)
    b = C.synthetic_corpus(3, 3000, 80)
    assert np.array_equal(a.train, b.train) and a.dictionary.words == b.dictionary.words
    assert a.dictionary.words[int(a.train[-1])] == C.EOS
    assert a.optimal_ppl == pytest.approx(math.exp(a.entropy))
    assert not np.array_equal(a.train, C.synthetic_corpus(4, 3000, 80).train)


def test_grammar_rejects_a_tiny_vocabulary():
    with pytest.raises(ValueError, match="too small"):
        C.make_grammar(20)


def test_fetch_ptb_checks_md5_sums(http_folder, tmp_path):
    root, url = http_folder
    write_corpus(root, C.PTB_FILES)
    with pytest.raises(DataError, match="expected md5 f26c4b92c5fdc7b3f8c7cdcb991d8420"):
        C.fetch_ptb(tmp_path / "cache", url, md5=C.PTB_MD5)
    assert not (tmp_path / "cache" / "ptb" / "ptb.train.txt").exists()
    good = {n: hashlib.md5((root / n).read_bytes()).hexdigest() for n in C.PTB_FILES.values()}
    assert C.fetch_ptb(tmp_path / "cache", url, md5=good) == tmp_path / "cache" / "ptb"
