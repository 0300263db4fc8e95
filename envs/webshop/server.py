"""WebShop's HTML mode: a local web server with upstream's URL scheme, for people and HTML-mode clients.

Routes (``session`` picks the goal: ``fixed_<i>`` or ``<i>`` is goal ``i``; any other name a goal drawn
from a generator seeded with the name):

* ``GET /<session>``: the search page; its form POSTs ``search_query`` to ``/<session>``, answered
  with a redirect to the results;
* ``GET /search_results/<session>/<keywords>/<page>``;
* ``GET /item_page/<session>/<asin>/<keywords>/<page>/<options>``;
* ``GET /item_sub_page/<session>/<asin>/<keywords>/<page>/<sub_page>/<options>``;
* ``GET /done/<session>/<asin>/<options>``: the purchase, with the score in ``#reward``.

``keywords`` is the space-joined query (upstream's ``['a', 'b']`` list form is accepted too) and
``options`` a URL-quoted JSON object of chosen options. Pages are self-contained HTML: no scripts,
no external resources; buttons and options are plain links. The server binds 127.0.0.1 only, on a
free port unless one is given, and runs in a thread of the calling process (``stop()`` ends it).

Run one for a person: ``python -m agentgym.envs.webshop.server --port 3000`` and open
``http://127.0.0.1:3000/fixed_0``.
"""

from __future__ import annotations

import argparse
import ast
import html
import json
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from agentgym.envs.webshop.engine import Shop, State
from agentgym.envs.webshop.pages import Urls, html_page

logger = logging.getLogger(__name__)


class _NotFound(Exception):
    pass


def _keywords(text: str) -> list[str]:
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise _NotFound(f"bad keywords {text!r}") from None
        return [str(word).lower() for word in value]
    return [] if text == "-" else text.lower().split(" ")


def _options(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise _NotFound(f"bad options {text!r}") from None
    if not isinstance(value, dict):
        raise _NotFound(f"options must be an object, got {text!r}")
    return {str(k).lower(): str(v).lower() for k, v in value.items()}


class ShopServer:
    """Serves a :class:`Shop`'s pages over HTTP on 127.0.0.1 (see the module docstring).

    Args:
        shop: the shop (catalog, search engine, goals).
        port: the port; 0 picks a free one.
    """

    def __init__(self, shop: Shop, port: int = 0):
        self.shop = shop
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> str:
        """Start serving in a background thread; returns the base URL."""
        if self._httpd is None:
            handler = type("Handler", (_Handler,), {"server_obj": self})
            self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="webshop-server", daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._httpd, self._thread = None, None

    # ------------------------------------------------------------------ pages
    def goal(self, session: str) -> dict[str, Any]:
        goals = self.shop.catalog.goals
        number = session.removeprefix("fixed_")
        if number.isdigit() and int(number) < len(goals):
            return goals[int(number)]
        return goals[random.Random(session).randrange(len(goals))]

    def page(self, path: str) -> str:
        """The HTML of a GET path; raises ``_NotFound`` for unknown routes, products or sub-pages."""
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if not parts:
            raise _NotFound("no session: open /fixed_0 (goal 0) or /<any name>")
        route, args = (parts[0], parts[1:]) if len(parts) > 1 else ("index", parts)
        shop = self.shop
        if route == "index":
            state = State()
        elif route == "search_results" and len(args) == 3:
            keywords = _keywords(args[1])
            state = State(
                page="results",
                keywords=keywords,
                page_num=_page(args[2]),
                hits=shop.engine.search(keywords, random.Random(f"{args[0]}|{args[1]}")),
            )
        elif route == "item_page" and len(args) == 5:
            state = State(
                page="item",
                asin=self._asin(args[1]),
                keywords=_keywords(args[2]),
                page_num=_page(args[3]),
                options=_options(args[4]),
            )
        elif route == "item_sub_page" and len(args) == 6:
            sub_page = args[4]
            if sub_page not in shop.sub_pages:
                raise _NotFound(f"no sub-page {sub_page!r}; expected one of {list(shop.sub_pages)}")
            state = State(
                page="sub",
                asin=self._asin(args[1]),
                keywords=_keywords(args[2]),
                page_num=_page(args[3]),
                sub_page=sub_page,
                options=_options(args[5]),
            )
        elif route == "done" and len(args) == 3:
            asin, options = self._asin(args[1]), _options(args[2])
            reward, parts_ = shop.reward(asin, options, self.goal(args[0]))
            state = State(page="done", asin=asin, options=options, reward=reward, reward_parts=parts_)
        else:
            raise _NotFound(f"no page at {path!r}")
        return html_page(shop, state, self.goal(args[0])["instruction_text"], args[0])

    def _asin(self, asin: str) -> str:
        asin = asin.upper()
        if asin not in self.shop.catalog.by_asin:
            raise _NotFound(f"no product {asin!r}")
        return asin


def _page(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise _NotFound(f"bad page number {text!r}")
    return int(text)


class _Handler(BaseHTTPRequestHandler):
    server_obj: ShopServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: str = "", location: str | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        try:
            self._send(200, self.server_obj.page(urlsplit(self.path).path))
        except _NotFound as exc:
            self._send(404, f"<!doctype html><title>Not found</title><p>{html.escape(str(exc))}</p>")

    def do_POST(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        query = (form.get("search_query") or [""])[0].strip().lower()
        if len(parts) != 1 or not parts[0] or not query:
            self._send(400, "<!doctype html><title>Bad request</title><p>POST search_query to /&lt;session&gt;</p>")
            return
        urls = Urls(unquote(parts[0]), State(keywords=query.split(" ")))
        self._send(303, "", location=urls.results(1))


def main(argv: list[str] | None = None) -> None:
    """Serve the embedded catalog (or a data directory) until interrupted."""
    from agentgym.envs.webshop.search import SearchEngine
    from agentgym.envs.webshop.tasks import generated_catalog, user_catalog

    parser = argparse.ArgumentParser(description="WebShop's HTML mode on 127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--num-products", type=int, default=10_000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    catalog = user_catalog(args.data_dir) if args.data_dir else generated_catalog(0, args.num_products)
    server = ShopServer(Shop(catalog, SearchEngine(catalog)), port=args.port)
    print(f"WebShop at {server.start()}/fixed_0 (Ctrl-C stops it)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
