"""WebShop, rebuilt offline: a shopping website with a real search engine, upstream's state machine and reward.

Env card
--------
* **Id**: ``agentgym/WebShop-v0``
* **Engine**: a reimplementation of WebShop (Yao et al., 2022) from its documented behaviour
  (``specs/webshop.md``; no upstream code, templates or data): the page model and transitions in
  :mod:`.engine`, their rendering in :mod:`.pages`, goals and splits in :mod:`.tasks`, products in
  :mod:`.catalog`, BM25 search with ``bm25s`` (Lucene scoring, k1=0.9, b=0.4) in :mod:`.search`, the
  reward in :mod:`.reward`, an HTML server in :mod:`.server`.
* **Tasks**: goals (an instruction naming attributes, options and a price cap, plus the target product)
  shuffled with seed 233 and split by index as upstream: ``test`` = goals 0-499, ``valid`` (upstream
  "eval") = 500-1499, ``train`` = the rest. Task ids are ``fixed_<goal index>`` (also the HTML session
  names). Default catalog: 10,000 generated products over five top-level categories (beauty,
  electronics, fashion, food, furniture) with about 17,900 goals; ``num_products=`` and
  ``catalog_seed=`` change it (100,000+ for benchmarks). Users' copy of the upstream data:
  ``data_dir=`` holding ``items_shuffle*.json``, ``items_ins_v2*.json`` and optionally
  ``items_human_ins.json`` (human instructions are used when present unless ``human_goals=False``).
* **Observation** (``observation_mode``): ``"text"`` is upstream's text mode (visible strings joined
  by `` [SEP] ``; a no-op repeats the page). ``"react"`` is the convention of ReAct-style LLM agents:
  ``[button]`` links, ``[[value]]`` for a chosen option, 3 products per results page and no paging,
  ``You have clicked <value>.`` after an option, ``Invalid action!`` for a no-op and
  ``Your score (min 0.0, max 1.0): <r>`` at the end. ``"html"`` gives the page's HTML and serves the
  same pages from a local web server (127.0.0.1, free port; ``info["webshop"]["url"]`` is the
  current page; ``env.unwrapped.server_url`` starts it in any mode).
* **Action**: ``search[query]`` on the search page, ``click[x]`` for a button, product ASIN or option
  value of the page (case-insensitive). Anything else is a no-op: reward 0, same state,
  ``action_valid=False`` and the reason in ``info["webshop"]["note"]``.
* **Reward**: 0 until ``click[buy now]``, then upstream's reward in [0, 1]:
  ``r_type * (attributes matched + options matched + [price <= cap]) / (#attributes + #options + 1)``.
  ``won`` (success) is reward == 1.0; ``score`` is the reward.
* **Termination**: buying. **Truncation**: ``max_turns`` (default 15).
* **anchor_obs** (GiGPO's state key): :func:`state_key`, the shopper's state itself: page, search
  keywords, results page number, product, sub-page, chosen options and, once bought, the reward. The
  same state reached at another turn or by another path gives the same anchor; the goal is left out
  (it is fixed within a task, and GiGPO groups within a task).
* **info**: ``admissible_actions`` (``search[<instruction>]`` on the search page, else the page's
  clicks), ``expert_action`` from an oracle that knows the goal product and options (it searches the
  product's title), ``ground_truth`` the goal ASIN and options. Under ``info["webshop"]``: ``page``,
  ``keywords``, ``page_num``, ``num_results``, ``asin``, ``options``, ``note``, ``reward_parts``
  (``r_att``, ``r_option``, ``r_price``, ``r_type``, weights, type-reward inputs; present only after
  buying),
  ``url`` in html mode, and ``goal`` (ASIN, attributes, options, price cap).
* **Copies and snapshots**: ``env.unwrapped.clone_state()``/``restore_state()`` snapshot an episode cheaply
  (the shopper's state, goal and random generator), for tree search or best-of-n; ``copy.deepcopy``/``pickle``
  of the env raise ``NotCopyableError`` (the search index is native), so make new envs with ``gym.make``.

Version history: v0, initial release. ``anchor_obs`` became a state key (issue 16; it was the page
text, which lists a product page's options the same way whether or not they were chosen); episodes,
rewards and observations are unchanged, so the engine version is not bumped.
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections.abc import Collection
from importlib.metadata import version

from agentgym.core import TextEnv, Transition
from agentgym.envs.webshop.catalog import Catalog
from agentgym.envs.webshop.engine import Shop, State, parse_action
from agentgym.envs.webshop.pages import Urls, html_page, react_page, text_page
from agentgym.envs.webshop.search import SearchEngine
from agentgym.envs.webshop.tasks import SPLIT_RANGES, generated_catalog, split_goals, user_catalog
from agentgym.error import InvalidArgumentError
from agentgym.tasks import Task, TaskSplit, choose_split

#: Bump when the shop's pages, transitions or reward change.
ENGINE_VERSION = 1
OBSERVATION_MODES = ("text", "react", "html")
_PRICE_TEXT = re.compile(r", and price lower than [\d.]+ dollars$")


def state_key(state: State) -> str:
    """The ``anchor_obs`` of ``state``: every field that makes two shopper states different (not the hit
    list, which the keywords determine, nor the reward breakdown)."""
    options = ", ".join(f"{name}={value}" for name, value in sorted(state.options.items()))
    parts = [
        f"page: {state.page}",
        f"search: {' '.join(state.keywords)}",
        f"results page: {state.page_num}",
        f"product: {state.asin or '-'}",
        f"sub-page: {state.sub_page or '-'}",
        f"options: {options or '-'}",
    ]
    if state.reward is not None:
        parts.append(f"reward: {state.reward}")
    return "\n".join(parts)


class WebShopEnv(TextEnv):
    """WebShop as a text env (see the module's env card).

    Args:
        split: ``train``, ``valid`` or ``test``.
        max_turns: turn limit; reaching it truncates the episode.
        observation_mode: ``"text"`` (upstream), ``"react"`` (LLM-agent convention) or ``"html"``.
        data_dir: a directory with the upstream data files; replaces the generated catalog.
        num_products: size of the generated catalog (ignored with ``data_dir``).
        catalog_seed: seed of the generated catalog.
        human_goals: with ``data_dir``, use ``items_human_ins.json`` when present.
        show_attrs: add upstream's optional ``Attributes`` sub-page.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "WebShop"
    splits = ("train", "valid", "test")

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 15,
        observation_mode: str = "text",
        data_dir: str | os.PathLike | None = None,
        num_products: int = 10_000,
        catalog_seed: int = 0,
        human_goals: bool = True,
        show_attrs: bool = False,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        if observation_mode not in OBSERVATION_MODES:
            raise InvalidArgumentError(f"observation_mode must be one of {OBSERVATION_MODES}, got {observation_mode!r}")
        choose_split(SPLIT_RANGES, split)
        catalog: Catalog = (
            user_catalog(data_dir, human_goals)
            if data_dir is not None
            else generated_catalog(catalog_seed, num_products)
        )
        goals = split_goals(catalog, split)
        if not goals:
            start, _ = SPLIT_RANGES[split]
            raise InvalidArgumentError(
                f"split {split!r} starts at goal {start}, but the catalog has {len(catalog.goals)} goals; "
                "use a larger catalog or another split"
            )
        self.engine_version = f"webshop-agentgym {ENGINE_VERSION} (bm25s {version('bm25s')})"
        tasks = TaskSplit(
            split,
            [
                Task(
                    f"fixed_{index}",
                    {
                        "catalog": catalog.source,
                        "goal_index": index,
                        "asin": goal["asin"],
                        "instruction": goal["instruction_text"],
                        "attributes": goal["attributes"],
                        "goal_options": goal["goal_options"],
                        "price_upper": goal["price_upper"],
                    },
                )
                for index, goal in goals
            ],
            self.engine_version,
        )
        super().__init__(
            tasks,
            max_turns=max_turns,
            max_action_length=max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        self.catalog = catalog
        self.observation_mode = observation_mode
        self.shop = Shop(catalog, SearchEngine(catalog), show_attrs=show_attrs)
        self._server = None
        self._state = State()
        self._goal_record: dict = {}
        self._rng = random.Random(0)

    @property
    def server_url(self) -> str:
        """Base URL of this env's HTML server (started on first use, stopped by ``close()``)."""
        if self._server is None:
            from agentgym.envs.webshop.server import ShopServer

            self._server = ShopServer(self.shop)
            self._server.start()
        return self._server.url

    # ----------------------------------------------------------------- hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        self._goal_record = self.catalog.goals[task.definition["goal_index"]]
        self._state = State()
        self._rng = random.Random(int(self.np_random.integers(2**62)))
        if self.observation_mode == "html":
            self.server_url  # noqa: B018 (starts the server)
        return self._transition(None, True), self._goal_record["instruction_text"]

    def _advance(self, action: str) -> Transition:
        state, note = self.shop.step(self._state, action, self._goal_record, self._rng)
        parsed = parse_action(action)
        react_click = note is None and self.observation_mode == "react" and parsed and parsed[0] == "click"
        if react_click and parsed[1] not in self.shop.react_clickables(self._state):
            state, note = self._state, f"{parsed[1]!r} is not offered on this page"
        if note is not None:
            return self._transition(note, False)
        target = self.shop.clickables(self._state).get(parsed[1]) if react_click else None
        clicked_option = target is not None and target.kind == "option"
        self._state = state
        transition = self._transition(None, True)
        if clicked_option:
            transition.observation = f"You have clicked {parsed[1]}."
        return transition

    def _clone_engine(self) -> dict:
        """The shopper's :class:`State`, the goal and the episode's random generator: all the episode holds (the
        catalog and search index do not change), so ``clone_state()`` is cheap here."""
        return {"state": self._state, "goal": self._goal_record, "rng": self._rng}

    def _restore_engine(self, engine_state: dict) -> None:
        self._state, self._goal_record, self._rng = engine_state["state"], engine_state["goal"], engine_state["rng"]

    def _close_engine(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # ----------------------------------------------------------------- helpers
    def _observation(self) -> str:
        instruction = self._goal_record["instruction_text"]
        if self.observation_mode == "react":
            return react_page(self.shop, self._state, instruction)
        if self.observation_mode == "html":
            return html_page(self.shop, self._state, instruction, self._task.task_id)
        return text_page(self.shop, self._state, instruction)

    def _admissible(self) -> list[str]:
        if self._state.page == "done":
            return []
        if self.shop.has_search_bar(self._state):
            query = _PRICE_TEXT.sub("", self._goal_record["instruction_text"]).lower()
            return [f"search[{query}]"]
        keys = (
            self.shop.react_clickables(self._state)
            if self.observation_mode == "react"
            else list(self.shop.clickables(self._state))
        )
        return [f"click[{key}]" for key in keys]

    def _transition(self, note: str | None, valid: bool) -> Transition:
        state, goal = self._state, self._goal_record
        done = state.page == "done"
        reward = float(state.reward or 0.0) if done else 0.0
        observation = self._observation()
        if note is not None and self.observation_mode == "react":
            observation = "Invalid action!"
        wanted = self.shop.wanted_options(goal)
        info = {
            "page": state.page,
            "keywords": list(state.keywords),
            "page_num": state.page_num,
            "num_results": len(state.hits),
            "asin": state.asin,
            "options": dict(state.options),
            "note": note,
            "goal": {
                "asin": goal["asin"],
                "attributes": list(goal["attributes"]),
                "goal_options": copy.deepcopy(goal["goal_options"]),
                "price_upper": goal["price_upper"],
            },
        }
        if done and state.reward_parts:  # present once bought (never None: vector envs merge infos by type)
            info["reward_parts"] = dict(state.reward_parts)
        if self._server is not None and self._task is not None:
            info["url"] = self.server_url + Urls(self._task.task_id, state).page()
        return Transition(
            observation=observation,
            reward=reward if valid else 0.0,
            terminated=done,
            action_valid=valid,
            won=done and reward == 1.0,
            score=reward,
            admissible_actions=self._admissible(),
            expert_action=self.shop.expert_action(state, goal, react=self.observation_mode == "react"),
            ground_truth=f"{goal['asin'].lower()}" + "".join(f"; {k}: {v}" for k, v in wanted.items()),
            anchor_obs=state_key(state),
            family_info=info,
        )
