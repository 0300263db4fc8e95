"""WebShop's pages rendered three ways from one page model (:meth:`.engine.Shop.elements`): text, ReAct, HTML.

* :func:`text_page`: upstream's ``text`` observation, the visible strings joined by `` [SEP] ``;
* :func:`react_page`: the convention of ReAct-style LLM agents (``[button]`` links, ``[[value]]`` for a
  chosen option, :data:`.engine.REACT_PRODUCTS` products per results page, no paging);
* :func:`html_page`: a self-contained page (no scripts, no external resources) whose links follow
  upstream's URL scheme (:class:`Urls`), served by :mod:`.server`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from urllib.parse import quote

from agentgym.envs.webshop.engine import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, REACT_PRODUCTS, Shop, State


def text_page(shop: Shop, state: State, instruction: str) -> str:
    """Upstream's ``text`` observation: the visible strings joined by `` [SEP] ``."""
    return " [SEP] ".join(el.text.strip() for el in shop.elements(state, instruction) if el.text.strip())


def react_page(shop: Shop, state: State, instruction: str) -> str:
    """The ReAct-style observation: ``[button]`` links, ``[[value]]`` for chosen options, 3 products."""
    if state.page == "done":
        return f"Your score (min 0.0, max 1.0): {state.reward}"
    elements = shop.elements(state, instruction)
    if state.page != "index":
        elements = elements[2:]  # the instruction is shown once, on the search page
    shown = set(shop.page_hits(state)[:REACT_PRODUCTS])
    lines: list[str] = []
    index = 0
    while index < len(elements):
        el = elements[index]
        index += 1
        if el.kind == "product" and el.text not in shown:
            index += 2  # its title and price
        elif el.kind == "button" and state.page == "results" and el.text in (NEXT_PAGE, PREV_PAGE):
            continue
        elif el.kind in ("button", "search", "product"):
            lines.append(f"[{el.text}]")
        elif el.kind == "option":
            lines[-1] += f" [[{el.text}]]" if state.options.get(el.name) == el.text else f" [{el.text}]"
        else:
            lines.append(el.text)
    return " \n".join(lines)


def html_page(shop: Shop, state: State, instruction: str, session: str, score_note: str = "") -> str:
    """A self-contained page (no scripts, no external resources) with upstream's URL scheme."""
    urls = Urls(session, state)
    body: list[str] = []
    items = shop.elements(state, instruction)
    for el in items:
        text = html.escape(el.text)
        if el.kind == "search":
            body.append(
                f'<form method="post" action="{urls.index()}"><input id="search_input" '
                f'name="search_query" type="text" autofocus> <button class="btn" id="search-button" '
                f'type="submit">{text}</button></form>'
            )
        elif el.kind == "button":
            body.append(
                f'<a class="btn" id="btn-{_slug(el.text)}" href="{html.escape(urls.button(el.text))}">{text}</a>'
            )
        elif el.kind == "product":
            body.append(
                f'<div class="product"><a class="product-link" href="{html.escape(urls.item(el.text, {}))}">{text}</a>'
            )
        elif el.kind == "option":
            chosen = state.options.get(el.name) == el.text
            href = html.escape(urls.item(state.asin, {**state.options, el.name: el.text}))
            body.append(
                f'<a class="option{" selected" if chosen else ""}" name="{html.escape(el.name)}" '
                f'value="{text}" href="{href}">{"&#9673; " if chosen else "&#9675; "}{text}</a>'
            )
        elif el.text == "Instruction:":
            body.append(f'<div class="instruction"><b>{text}</b>')
        elif el.text == instruction and el.kind == "text":
            body.append(f'<span id="instruction-text">{text}</span></div>')
        elif state.page == "done" and el.text == f"{state.reward}":
            body.append(f'<p id="reward">{text}</p>')
        else:
            body.append(f"<p>{text}</p>")
        if el.kind == "text" and state.page == "results" and el.text.startswith("$"):
            body.append("</div>")
    return _PAGE.format(title=html.escape(f"WebShop - {state.page}"), body="\n".join(body) + score_note)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


class Urls:
    """Upstream's URL scheme for one session and state."""

    def __init__(self, session: str, state: State):
        self.session, self.state = quote(session, safe=""), state
        self.keywords = quote(" ".join(state.keywords) or "-", safe="")

    def index(self) -> str:
        return f"/{self.session}"

    def page(self) -> str:
        """The path of the state's own page."""
        state = self.state
        if state.page == "results":
            return self.results(state.page_num)
        if state.page == "item":
            return self.item(state.asin, state.options)
        if state.page == "sub":
            return self.button(state.sub_page or "")
        if state.page == "done":
            return self.button(BUY_NOW)
        return self.index()

    def results(self, page: int) -> str:
        return f"/search_results/{self.session}/{self.keywords}/{page}"

    def item(self, asin: str | None, options: Mapping[str, str]) -> str:
        return f"/item_page/{self.session}/{asin}/{self.keywords}/{self.state.page_num}/{_options(options)}"

    def button(self, label: str) -> str:
        state = self.state
        if label == BACK_TO_SEARCH:
            return self.index()
        if label == NEXT_PAGE:
            return self.results(state.page_num + 1)
        if label == PREV_PAGE:
            if state.page == "results":
                return self.results(state.page_num - 1)
            if state.page == "sub":
                return self.item(state.asin, state.options)
            return self.results(state.page_num)
        if label == BUY_NOW:
            return f"/done/{self.session}/{state.asin}/{_options(state.options)}"
        return (
            f"/item_sub_page/{self.session}/{state.asin}/{self.keywords}/{state.page_num}/"
            f"{quote(label, safe='')}/{_options(state.options)}"
        )


def _options(options: Mapping[str, str]) -> str:
    return quote(json.dumps(dict(options), sort_keys=True), safe="")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 960px; margin: 1em auto; padding: 0 1em; color: #222; }}
.btn {{ display: inline-block; margin: .2em .3em; padding: .3em .8em; border: 1px solid #888; border-radius: 4px;
        background: #f3f3f3; color: #111; text-decoration: none; cursor: pointer; font-size: 1em; }}
.product {{ border-bottom: 1px solid #ddd; padding: .4em 0; }}
.product-link {{ font-weight: bold; }}
.option {{ display: inline-block; margin: .2em; padding: .2em .6em; border: 1px solid #aaa; border-radius: 12px;
           text-decoration: none; color: #111; }}
.option.selected {{ background: #ffd27f; border-color: #d08a00; }}
.instruction {{ background: #eef5ff; padding: .5em; margin-bottom: .5em; }}
#reward {{ font-size: 2em; font-weight: bold; }}
</style></head>
<body>
{body}
</body></html>
"""
