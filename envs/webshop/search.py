"""WebShop's search engine: BM25 (``bm25s``, Lucene scoring, k1=0.9, b=0.4) over upstream's documents.

Documents are :meth:`Catalog.document` texts (title, description, first bullet point and option text,
lower-cased), analysed like Lucene's English analyzer: word tokens, possessive ``'s`` removed, Lucene's
33 English stop words dropped, Porter stems. A search keeps the best 50 hits with a positive score;
equal scores keep catalog order (Lucene breaks ties by document number).

Upstream's special queries: ``<r>`` gives 50 random products, ``<a> attr`` products with that
attribute, ``<c> category`` products of a top-level category, ``<q> query`` products scraped for that
query (each the first 50 in catalog order).

The index is built once per catalog and cached on disk under
``$AGENTGYM_CACHE/webshop/bm25-<key>/``, where the key hashes the index version, the BM25 parameters
and the catalog's documents.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import numpy as np

from agentgym.cache import cache_root, cached_folder
from agentgym.envs.webshop.catalog import Catalog

#: Bump when the analyzer or the index layout changes.
INDEX_VERSION = 1
K1, B = 0.9, 0.4
#: Hits kept per search (upstream SEARCH_RETURN_N).
SEARCH_RETURN_N = 50
#: Lucene's default English stop words.
LUCENE_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
_TOKEN = re.compile(r"\w+(?:'\w+)*")


class Analyzer:
    """Lucene-English-like analysis: tokens, no possessives, no stop words, Porter stems (memoized)."""

    def __init__(self) -> None:
        import Stemmer

        self._stem = Stemmer.Stemmer("porter").stemWord
        self._cache: dict[str, str | None] = {}

    def __call__(self, text: str) -> list[str]:
        out, cache = [], self._cache
        for token in _TOKEN.findall(text.lower()):
            term = cache.get(token, "")
            if term == "":
                word = token.removesuffix("'s")
                term = cache[token] = None if word in LUCENE_STOPWORDS else self._stem(word.replace("'", ""))
            if term is not None:
                out.append(term)
        return out


class SearchEngine:
    """BM25 search over a catalog, with the index cached on disk (see the module docstring).

    Args:
        catalog: the products to index.
        cache: keep the index on disk (``False`` builds it in memory every time).
    """

    def __init__(self, catalog: Catalog, cache: bool = True):
        import bm25s

        self.catalog = catalog
        self.analyzer = Analyzer()
        key = hashlib.sha256(f"{INDEX_VERSION}|{K1}|{B}|{catalog.digest}".encode()).hexdigest()[:32]
        self.path = cache_root() / "webshop" / f"bm25-{key}"
        self.bm25, self.built = None, False
        if cache:
            cached_folder(self.path, self._build_into, "params.index.json")
            if self.bm25 is None:
                self.bm25 = bm25s.BM25.load(str(self.path), show_progress=False)
        else:
            self.bm25, self.built = self._build(), True
        self.vocab = self.bm25.vocab_dict

    def _build(self):
        import bm25s

        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(term, len(vocab)) for term in self.analyzer(doc)] for doc in self.catalog.documents]
        bm25 = bm25s.BM25(method="lucene", k1=K1, b=B)
        bm25.index((ids, vocab), show_progress=False)
        return bm25

    def _build_into(self, folder: Path) -> None:
        self.bm25, self.built = self._build(), True
        self.bm25.save(str(folder), show_progress=False)

    def bm25_hits(self, query: str, n: int = SEARCH_RETURN_N) -> list[int]:
        """Indices of the best ``n`` products for ``query`` (positive scores, ties in catalog order)."""
        ids = [self.vocab[t] for t in self.analyzer(query) if t in self.vocab]
        if not ids:
            return []
        scores = self.bm25.get_scores_from_ids(ids)
        positive = int(np.count_nonzero(scores > 0))
        n = min(n, positive)
        if n == 0:
            return []
        threshold = scores[np.argpartition(-scores, n - 1)[:n]].min()
        above = np.flatnonzero(scores > threshold)
        equal = np.flatnonzero(scores == threshold)[: n - len(above)]
        hits = np.concatenate([above, equal])
        return hits[np.lexsort((hits, -scores[hits]))].tolist()

    def search(self, keywords: list[str], rng: random.Random) -> list[str]:
        """The ASINs a search for ``keywords`` (the lower-cased query split on spaces) returns."""
        products = self.catalog.products
        head, rest = (keywords[0] if keywords else ""), " ".join(keywords[1:]).strip()
        if head == "<r>":
            return [p["asin"] for p in rng.sample(products, min(SEARCH_RETURN_N, len(products)))]
        if head in ("<a>", "<c>", "<q>"):
            if head == "<a>":
                matches = (p for p in products if rest in p["Attributes"])
            elif head == "<c>":
                matches = (p for p in products if p["category"] == rest)
            else:
                matches = (p for p in products if p["query"] == rest)
            out = []
            for product in matches:
                out.append(product["asin"])
                if len(out) == SEARCH_RETURN_N:
                    break
            return out
        return [products[i]["asin"] for i in self.bm25_hits(" ".join(keywords))]
