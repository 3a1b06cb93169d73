"""Corpora for the language model: the PTB text format, its download, and a synthetic
corpus whose true per-token entropy is known in closed form.

No torch here: token ids are numpy arrays, so the loader and the grammar are cheap to
import and to test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import PTB_BASE_URL

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
#: The published checksums of the standard files (Mikolov's simple-examples set, as mirrored
#: at PTB_BASE_URL); MD5 is the only sum the common loaders (torchtext among them) publish.
PTB_MD5 = {
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}


# --------------------------------------------------------------------------- the PTB format


def tokenize_lines(lines: Iterable[str]) -> list[str]:
    """Whitespace tokens of each non-empty line, with ``<eos>`` appended at each line end."""
    tokens: list[str] = []
    for line in lines:
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


@dataclass
class Dictionary:
    """Word <-> id, ordered by training frequency (most frequent first, ties alphabetical)."""

    words: list[str]
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @classmethod
    def from_tokens(cls, tokens: Sequence[str]) -> Dictionary:
        counts = Counter(tokens)
        counts.setdefault(EOS, 0)
        counts.setdefault(UNK, 0)
        return cls(sorted(counts, key=lambda w: (-counts[w], w)))

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token ids (int64); a word outside the dictionary becomes ``<unk>``."""
        unk = self.index[UNK]
        return np.fromiter((self.index.get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[int(i)] for i in ids]


@dataclass
class Corpus:
    """Train/valid/test token ids over one dictionary built from the training split."""

    dictionary: Dictionary
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    source: str
    #: True entropy rate in nats per token (synthetic corpus only), else None.
    entropy: float | None = None
    #: sha256 of each file read (real corpora), for the report.
    sha256: dict[str, str] = field(default_factory=dict)
    #: The grammar that generated the text (synthetic corpus only), else None.
    grammar: Grammar | None = None

    @property
    def optimal_ppl(self) -> float | None:
        return None if self.entropy is None else math.exp(self.entropy)

    def counts(self) -> np.ndarray:
        """How often each word id occurs in the training split."""
        return np.bincount(self.train, minlength=len(self.dictionary))

    def unigram_logp(self) -> np.ndarray:
        """log p(w) of the unigram model of the training split (add-one smoothed, so a
        word never seen in training keeps a finite cost)."""
        counts = self.counts().astype(np.float64) + 1.0
        return np.log(counts / counts.sum())

    def grammar_logp(self, prev: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """log p(ids | prev) under the true grammar, token by token (synthetic corpus only):
        the class transition times the word's emission probability; ``-inf`` where the
        grammar forbids the token (a class transition of probability 0, or ``<unk>``)."""
        if self.grammar is None:
            raise ValueError(f"corpus {self.source!r} has no known grammar")
        cls, emit = self.grammar.id_tables(self.dictionary)
        c_prev, c = cls[prev], cls[ids]
        known = (c_prev >= 0) & (c >= 0)
        with np.errstate(divide="ignore"):
            trans = np.log(self.grammar.transition)
        out = np.full(np.shape(ids), -np.inf)
        out[known] = trans[c_prev[known], c[known]] + emit[ids[known]]
        return out


def build_corpus(splits: Mapping[str, Sequence[str]], source: str, **extra) -> Corpus:
    """Encode token lists of the three splits with a dictionary built from ``splits['train']``."""
    dictionary = Dictionary.from_tokens(splits["train"])
    ids = {name: dictionary.encode(splits[name]) for name in SPLITS}
    return Corpus(dictionary, ids["train"], ids["valid"], ids["test"], source, **extra)


def load_folder(folder: Path, names: Mapping[str, str] | None = None) -> Corpus:
    """Read a corpus in the PTB format from ``folder`` (``train.txt``, ``valid.txt``,
    ``test.txt`` unless ``names`` maps split -> file name)."""
    from labrunner.data import DataError, sha256_file

    folder = Path(folder).expanduser()
    names = dict(names or {s: f"{s}.txt" for s in SPLITS})
    splits, sums = {}, {}
    for split in SPLITS:
        path = folder / names[split]
        if not path.is_file():
            raise DataError(f"corpus folder {folder}: missing {names[split]} (the {split} split)")
        splits[split] = tokenize_lines(path.read_text(encoding="utf-8").splitlines())
        sums[names[split]] = sha256_file(path)
    if not splits["train"]:
        raise DataError(f"corpus folder {folder}: {names['train']} holds no tokens")
    return build_corpus(splits, str(folder), sha256=sums)


def fetch_ptb(
    cache_dir: Path,
    base_url: str = PTB_BASE_URL,
    sha256: Mapping[str, str] | None = None,
    md5: Mapping[str, str] | None = None,
) -> Path:
    """Download the three PTB files once into ``cache_dir/ptb`` and return that folder.

    ``sha256`` (and ``md5``) map a file name (``ptb.train.txt``) to its expected
    digest; by default the standard files from the standard URL are checked against
    the published :data:`PTB_MD5`. A mismatch raises :class:`labrunner.data.DataError`
    and leaves nothing in the cache. The sha256 of each file is recorded by :func:`load_folder`.
    """
    from labrunner.data import download

    folder = Path(cache_dir) / "ptb"
    sums = dict(sha256 or {})
    md5s = dict(PTB_MD5 if md5 is None and base_url == PTB_BASE_URL else md5 or {})
    for name in PTB_FILES.values():
        download(base_url.rstrip("/") + "/" + name, folder / name, sums.get(name) or None, md5=md5s.get(name))
    return folder


# --------------------------------------------------------------------------- synthetic grammar

CLASSES = ("DET", "ADJ", "NOUN", "VERB", "ADV", "PREP", "NUM", "EOS")
SEED_WORDS = {
    "DET": ["the", "a", "its", "this", "some", "that", "each", "no"],
    "PREP": ["of", "in", "for", "to", "on", "by", "with", "at", "from", "about"],
    "NOUN": ["company", "market", "year", "army", "government", "bank", "price", "investor"]
    + ["share", "stock", "president", "taxpayer", "official", "trader", "budget", "fund"],
    "VERB": ["said", "rose", "fell", "sold", "bought", "reported", "expects", "owns", "agreed"],
    "ADJ": ["new", "federal", "big", "first", "other", "major", "foreign", "financial"],
    "ADV": ["also", "recently", "sharply", "still", "only", "again"],
}
#: Share of the open-class vocabulary each class gets.
OPEN_SHARES = {"NOUN": 0.5, "VERB": 0.25, "ADJ": 0.17, "ADV": 0.08}


@dataclass(frozen=True)
class Grammar:
    """A first-order Markov chain over word classes, each class emitting its own words.

    Every word belongs to exactly one class, so the class sequence is a function of the
    word sequence and the entropy rate of the words is that of the chain plus the
    emission entropy (see :func:`entropy_rate`).
    """

    transition: np.ndarray  # (C, C), rows sum to 1, ordered as CLASSES
    words: tuple[tuple[str, ...], ...]  # per class
    emission: tuple[np.ndarray, ...]  # per class, a distribution over its words

    def id_tables(self, dictionary: Dictionary) -> tuple[np.ndarray, np.ndarray]:
        """Per dictionary id: its class index (-1 for words outside the grammar) and
        log p(word | class)."""
        table = self.word_table()
        cls = np.array([table.get(w, (-1, 1.0))[0] for w in dictionary.words], dtype=np.int64)
        with np.errstate(divide="ignore"):
            emit = np.log(np.array([table.get(w, (-1, 0.0))[1] for w in dictionary.words]))
        return cls, emit

    def word_table(self) -> dict[str, tuple[int, float]]:
        """word -> (class index, probability of the word given its class)."""
        return {
            w: (c, float(p))
            for c, (ws, ps) in enumerate(zip(self.words, self.emission, strict=False))
            for w, p in zip(ws, ps, strict=False)
        }


def zipf(n: int, exponent: float) -> np.ndarray:
    """The Zipf distribution p_k proportional to 1/k^exponent over ranks 1..n."""
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return p / p.sum()


def make_grammar(vocab_size: int = 200, zipf_exponent: float = 1.1, end_prob: float = 0.25) -> Grammar:
    """A small English-like grammar with ``vocab_size`` words (``<eos>`` and ``N`` included).

    ``end_prob`` is the chance that a sentence ends after a noun, verb or adverb; it sets
    the mean sentence length. Words within a class follow Zipf's law with ``zipf_exponent``.
    """
    closed = len(SEED_WORDS["DET"]) + len(SEED_WORDS["PREP"]) + 2  # + N and <eos>
    open_size = vocab_size - closed
    if open_size < 4 * 8:
        raise ValueError(f"synthetic vocabulary of {vocab_size} words is too small (at least {closed + 32})")
    if not 0.0 < end_prob < 1.0:
        raise ValueError(f"end probability must lie in (0, 1), got {end_prob}")
    sizes = {c: int(round(open_size * s)) for c, s in OPEN_SHARES.items()}
    sizes["NOUN"] += open_size - sum(sizes.values())
    words: dict[str, list[str]] = {
        "DET": SEED_WORDS["DET"],
        "PREP": SEED_WORDS["PREP"],
        "NUM": ["N"],
        "EOS": [EOS],
    }
    for c, n in sizes.items():
        seed = SEED_WORDS[c][:n]
        words[c] = seed + [f"{c.lower()}{i}" for i in range(len(seed), n)]
    p = end_prob
    rows = {
        "EOS": {"DET": 0.6, "NOUN": 0.25, "NUM": 0.15},
        "DET": {"ADJ": 0.3, "NOUN": 0.7},
        "ADJ": {"ADJ": 0.15, "NOUN": 0.85},
        "NUM": {"NOUN": 0.8, "VERB": 0.2},
        "NOUN": {"EOS": p, "VERB": (1 - p) * 0.6, "PREP": (1 - p) * 0.4},
        "VERB": {
            "EOS": p,
            "DET": (1 - p) * 0.5,
            "NUM": (1 - p) * 0.2,
            "ADV": (1 - p) * 0.15,
            "PREP": (1 - p) * 0.15,
        },
        "ADV": {"EOS": p, "PREP": 1 - p},
        "PREP": {"DET": 0.6, "NUM": 0.3, "NOUN": 0.1},
    }
    transition = np.zeros((len(CLASSES), len(CLASSES)))
    for c, row in rows.items():
        for d, q in row.items():
            transition[CLASSES.index(c), CLASSES.index(d)] = q
    return Grammar(
        transition=transition,
        words=tuple(tuple(words[c]) for c in CLASSES),
        emission=tuple(zipf(len(words[c]), zipf_exponent) for c in CLASSES),
    )


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """The distribution pi with pi T = pi of an ergodic chain (solved as a linear system)."""
    n = transition.shape[0]
    a = np.vstack([transition.T - np.eye(n), np.ones((1, n))])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    return np.linalg.lstsq(a, b, rcond=None)[0]


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats (0 log 0 = 0)."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def entropy_rate(grammar: Grammar) -> float:
    r"""True entropy rate of the word stream in nats per token:
    $H = \sum_s \pi_s \left[H(T_{s\cdot}) + H(E_s)\right]$."""
    pi = stationary_distribution(grammar.transition)
    return float(
        sum(pi[s] * (entropy(grammar.transition[s]) + entropy(grammar.emission[s])) for s in range(len(pi)))
    )


def generate(grammar: Grammar, n_tokens: int, rng: np.random.Generator) -> list[str]:
    """At least ``n_tokens`` tokens of whole sentences, each ending in ``<eos>``."""
    eos = CLASSES.index("EOS")
    cum_t = np.cumsum(grammar.transition, axis=1)
    cum_e = [np.cumsum(e) for e in grammar.emission]
    # Draw the uniforms in bulk: one for the class, one for the word of each token.
    out: list[str] = []
    state = eos
    while len(out) < n_tokens or state != eos:
        u = rng.random((max(n_tokens - len(out), 64), 2))
        for u_class, u_word in u:
            state = min(int(np.searchsorted(cum_t[state], u_class, side="right")), len(CLASSES) - 1)
            ws = grammar.words[state]
            out.append(ws[min(int(np.searchsorted(cum_e[state], u_word, side="right")), len(ws) - 1)])
            if len(out) >= n_tokens and state == eos:
                break
    return out


def log_prob(grammar: Grammar, tokens: Sequence[str]) -> float:
    """Log-probability (nats) of ``tokens`` under the grammar, starting after an ``<eos>``."""
    table = grammar.word_table()
    state, total = CLASSES.index("EOS"), 0.0
    for t in tokens:
        c, p_word = table[t]
        total += math.log(grammar.transition[state, c]) + math.log(p_word)
        state = c
    return total


def synthetic_corpus(
    seed: int, train_tokens: int, vocab_size: int = 200, zipf_exponent: float = 1.1, end_prob: float = 0.25
) -> Corpus:
    """The lab's offline corpus: train/valid/test sampled from :func:`make_grammar`
    (valid and test a tenth of train each), deterministic for ``seed``."""
    grammar = make_grammar(vocab_size, zipf_exponent, end_prob)
    rng = np.random.default_rng([seed, 2024])
    sizes = {
        "train": train_tokens,
        "valid": max(train_tokens // 10, 200),
        "test": max(train_tokens // 10, 200),
    }
    splits = {name: generate(grammar, n, rng) for name, n in sizes.items()}
    return build_corpus(splits, "synthetic", entropy=entropy_rate(grammar), grammar=grammar)
