"""Negotiation: two agents split a pool of items they value differently (competitive, verifiable).

Env card
--------
* **Ids**: ``agentgym/Negotiation-v0`` (one seat against a scripted opponent, a :class:`~agentgym.core.TextEnv`);
  PettingZoo ``env()`` (AEC) and ``parallel_env()`` from this module, agents ``player_0`` and ``player_1``.
* **Tasks**: seeded item pools, ids ``pool/<seed>``: three item types drawn from a fixed vocabulary, 1-4 of each,
  and a private valuation per agent (non-negative integers; each agent's whole pool is worth exactly 10; every
  item is worth something to someone; some item is worth something to both; the two valuations differ).
  Splits ``train`` (1000 pools), ``valid`` (100), ``test`` (100) on disjoint seed ranges. Built in memory,
  deterministically (Python's string-seeded ``random.Random``), so nothing is cached.
* **Rules**: ``player_0`` opens. On its move an agent may
  ``offer book=1 hat=0 ball=2`` (the counts it *keeps*; items left out go to the other side),
  ``accept`` (the offer on the table), or ``walk away``. Any move may end with ``| <message>``, which is
  passed to the other agent. At most 10 offers are made in all; after the last one the other agent may only
  accept or walk away.
* **Observation**: the rules, the pool and the agent's own valuation at the start; then the other agent's move
  (offer, value of the offer to you, message) and how many offers are left.
* **Reward**: when an offer is accepted, each agent gets the value of its share by its own valuation (0-10);
  walking away, or no deal before the turn limit, gives 0 to both. ``info["score"]`` is reward / 10.
  ``info["won"]``: a deal was made and this agent's value beats the other's.
* **Termination**: a deal or a walk-away. **Truncation**: ``max_turns`` moves (PettingZoo views: all moves,
  default 40; single-agent view: the learner's moves, default 20).
* **info**: the standard keys; ``admissible_actions`` lists every legal move of the agent to move (every offer
  in canonical form, ``accept`` when an offer is on the table, ``walk away``; ``[]`` while waiting). The
  PettingZoo views add ``action_mask`` (``int8``, 127 entries aligned with :data:`OFFER_KEEPS` spelled for the
  pool, then ``accept``, ``walk away``: 1 for the moves in ``admissible_actions``), and accept ``max_cycles`` and
  ``render_mode="human"``; convert the AEC view with ``turn_based_aec_to_parallel`` (or use ``parallel_env()``),
  not ``aec_to_parallel`` (see :mod:`agentgym.envs.multiagent.base`);
  ``expert_action`` is the move of the scripted negotiator (:func:`scripted_move`) for the agent to move;
  ``ground_truth`` None. Under ``info["negotiation"]``: ``items``, ``counts``, ``my_values``, ``offer`` (the
  offer on the table: ``{"by": agent, "keeps": [...], "gives": [...]}`` or None), ``offers_left``, ``deal``
  (the agreed ``{agent: counts}`` or None), ``message`` (the other agent's last message). ``anchor_obs`` is a
  key of the game state from the agent's side (pool, own values, offer on the table, offers made, outcome, who
  moves), without the free-text messages, so the same position reached by other words has the same anchor.
* **Bad actions**: the common checks, then the move grammar: an unknown move, an unknown item, a count that is
  not a whole number or exceeds the pool, an item named twice, ``accept`` with nothing on the table, or a
  counter-offer after the last offer are answered with what was wrong and what is allowed; the agent keeps
  the move.

Scripted negotiator (:func:`scripted_move`, :class:`ScriptedNegotiator`): a time-dependent (Boulware)
concession strategy. Its aspiration falls from 10 to 5 points along the offer budget (quadratically, so it
concedes late); it accepts an offer worth at least its next aspiration (anything above 0 after the last offer)
and otherwise offers, among the splits worth at least its aspiration to itself, the one that leaves the
opponent the most by an estimate learnt from the opponent's own offers (items the opponent keeps count as
valuable to it). It never walks away.

Version history: v0, initial release.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from agentgym.agents import ExpertAgent, RandomAgent
from agentgym.core import Transition
from agentgym.error import InvalidArgumentError
from agentgym.tasks import Task, TaskSplit, choose_split

from agentgym.envs.multiagent.base import Outcome, SingleAgentView, TurnGame
from agentgym.envs.multiagent.views import pettingzoo_constructors

#: Bump when pools, rules or the scripted strategy change (part of every task definition).
SUITE_VERSION = 1
AGENTS = ("player_0", "player_1")
ITEM_NAMES = ("book", "hat", "ball", "apple", "pen", "mug", "coin", "lamp")
#: Every agent's whole pool is worth this much.
TOTAL_VALUE = 10
#: Offers allowed in one game (both agents together).
MAX_OFFERS = 10
#: Most items of one type in a pool (a pool has three types, 1 to MAX_COUNT of each).
MAX_COUNT = 4
#: The fixed move list ``info["action_mask"]`` is aligned with (PettingZoo views): every offer keeping
#: ``(k1, k2, k3)`` of the pool's three item types, 0 to MAX_COUNT each in ``itertools.product`` order
#: (125 offers), then ``accept``, then ``walk away``; :meth:`NegotiationGame.move_list` spells them for a pool.
OFFER_KEEPS: tuple[tuple[int, ...], ...] = tuple(itertools.product(range(MAX_COUNT + 1), repeat=3))
#: split -> (first seed, number of pools); ranges are disjoint.
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 1000), "valid": (100_000, 100), "test": (200_000, 100)}


# --------------------------------------------------------------------------- pools
def _valuations(counts: Sequence[int]) -> list[tuple[int, ...]]:
    """Every non-negative integer valuation of the pool that sums to TOTAL_VALUE."""
    return [
        values
        for values in itertools.product(*(range(TOTAL_VALUE // c + 1) for c in counts))
        if sum(c * v for c, v in zip(counts, values)) == TOTAL_VALUE
    ]


def make_pool(seed: int) -> dict[str, Any]:
    """The pool of one seed: item names, counts and both agents' valuations (a task definition)."""
    rng = random.Random(f"agentgym-negotiation-{SUITE_VERSION}-{seed}")
    while True:
        items = rng.sample(ITEM_NAMES, 3)
        counts = [rng.randint(1, MAX_COUNT) for _ in items]
        options = _valuations(counts)
        if len(options) < 2:
            continue
        first, second = rng.choice(options), rng.choice(options)
        everything_wanted = all(a or b for a, b in zip(first, second))
        something_shared = any(a and b for a, b in zip(first, second))
        if first != second and everything_wanted and something_shared:
            return {
                "suite_version": SUITE_VERSION,
                "items": items,
                "counts": counts,
                "values": {AGENTS[0]: list(first), AGENTS[1]: list(second)},
                "max_offers": MAX_OFFERS,
            }


@lru_cache(maxsize=None)
def split_tasks(split: str) -> tuple[Task, ...]:
    first, size = choose_split(SPLITS, split)
    return tuple(Task(f"pool/{seed}", make_pool(seed)) for seed in range(first, first + size))


# --------------------------------------------------------------------------- moves
def offer_text(items: Sequence[str], keeps: Sequence[int]) -> str:
    """The canonical form of an offer in which the speaker keeps ``keeps``."""
    return "offer " + " ".join(f"{item}={n}" for item, n in zip(items, keeps))


def _describe(items: Sequence[str], counts: Sequence[int]) -> str:
    parts = [f"{n} {item}{'' if n == 1 else 's'}" for item, n in zip(items, counts) if n]
    return ", ".join(parts) if parts else "nothing"


def _singular(word: str, items: Sequence[str]) -> str:
    if word in items:
        return word
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in items:
            return word[: -len(suffix)]
    return word


_PAIR = re.compile(r"^([a-z]+)\s*[=:]\s*(\S+)$|^(\S+)\s+([a-z]+)$")


def parse_move(text: str, items: Sequence[str], counts: Sequence[int]) -> tuple[tuple[str, Any, str], str | None]:
    """``((kind, keeps|None, message), problem)`` for a move text; ``problem`` is None for a well-formed move."""
    body, _, message = text.partition("|")
    body, message = " ".join(body.lower().split()), message.strip()
    if body in ("accept", "accept offer", "deal"):
        return ("accept", None, message), None
    if body in ("walk away", "walkaway", "walk", "quit"):
        return ("walk", None, message), None
    allowed = f"expected 'offer {' '.join(f'{i}=<n>' for i in items)}', 'accept' or 'walk away'"
    head, _, rest = body.partition(" ")
    if head not in ("offer", "propose", "counter", "counteroffer"):
        return ("invalid", None, message), f"unknown move {text.strip()[:60]!r}; {allowed}"
    keeps = [0] * len(items)
    seen: set[str] = set()
    chunks = [chunk.strip() for chunk in re.split(r"[,;]|\s+(?=[a-z]+\s*[=:])", rest) if chunk.strip()]
    if not chunks:
        return ("invalid", None, message), f"the offer names no items; {allowed}"
    for chunk in chunks:
        match = _PAIR.match(chunk)
        if not match:
            return ("invalid", None, message), f"cannot read {chunk!r} in the offer; write item=count, e.g. {items[0]}=1"
        name, count = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        name = _singular(name, items)
        if name not in items:
            return ("invalid", None, message), f"there is no {name!r} in the pool (items: {', '.join(items)})"
        if name in seen:
            return ("invalid", None, message), f"{name} is named twice in the offer"
        seen.add(name)
        if not count.isdigit():
            return ("invalid", None, message), f"{name}={count} is not a whole number of items"
        index = items.index(name)
        if int(count) > counts[index]:
            return ("invalid", None, message), (
                f"{name}={count} asks for more than the pool holds ({counts[index]} {name}"
                f"{'' if counts[index] == 1 else 's'})"
            )
        keeps[index] = int(count)
    return ("offer", keeps, message), None


# --------------------------------------------------------------------------- the scripted negotiator
def _value(values: Sequence[int], share: Sequence[int]) -> int:
    return sum(v * n for v, n in zip(values, share))


def aspiration(offers_made: int) -> float:
    """Points the scripted negotiator insists on after ``offers_made`` offers (10 down to 5, conceding late)."""
    progress = min(1.0, offers_made / MAX_OFFERS)
    return TOTAL_VALUE * (1.0 - 0.5 * progress**2)


def scripted_move(
    counts: Sequence[int],
    my_values: Sequence[int],
    offer_keeps_for_me: Sequence[int] | None,
    opponent_offers: Sequence[Sequence[int]],
    offers_made: int,
    items: Sequence[str],
) -> str:
    """The scripted negotiator's move (see the module docstring); only uses what the agent can see.

    ``offer_keeps_for_me``: what the offer on the table leaves to this agent (None if none);
    ``opponent_offers``: what the opponent kept in each of its offers so far.
    """
    offers_left = MAX_OFFERS - offers_made
    if offer_keeps_for_me is not None:
        on_table = _value(my_values, offer_keeps_for_me)
        if offers_left == 0 or on_table >= aspiration(offers_made + 1):
            return "accept"
    # opponent model: 1 point per item plus how much of each item it asked for, on average
    weights = [1.0] * len(counts)
    for keeps in opponent_offers:
        for j, n in enumerate(keeps):
            weights[j] += 2.0 * n / counts[j] / len(opponent_offers)
    target = aspiration(offers_made)
    last = offers_left == 1  # our offer is the last one: the opponent can only take it or leave it
    best, best_key = None, None
    for keeps in itertools.product(*(range(c + 1) for c in counts)):
        mine = _value(my_values, keeps)
        theirs = sum(w * (c - k) for w, c, k in zip(weights, counts, keeps))
        if last:  # the most for us that still leaves the opponent something
            key = (theirs > 0, mine, theirs)
        elif mine >= target:  # the most for the opponent among what we can live with
            key = (True, theirs, mine)
        else:
            continue
        if best_key is None or key > best_key:
            best, best_key = keeps, key
    return offer_text(items, best)


class ScriptedNegotiator(ExpertAgent):
    """The rule-based negotiator: plays ``info["expert_action"]`` (computed by :func:`scripted_move`)."""

    name = "scripted_negotiator"


# --------------------------------------------------------------------------- the game
def _other(agent: str) -> str:
    return AGENTS[1 - AGENTS.index(agent)]


class NegotiationGame(TurnGame):
    """The negotiation rules as a :class:`~agentgym.envs.multiagent.base.TurnGame` (see the env card).

    Args:
        split: ``train``, ``valid`` or ``test``.
        max_turns: cap on the moves of both agents (``None``: no cap).
        max_action_length: longer moves are answered as invalid.
    """

    family = "Negotiation"
    possible_agents = AGENTS
    copyable = True  # its state is the dict below

    def __init__(self, split: str = "train", max_turns: int | None = 40, max_action_length: int = 4096):
        self.engine_version = f"agentgym negotiation v{SUITE_VERSION}"
        super().__init__(TaskSplit(split, split_tasks(split), self.engine_version), max_turns=max_turns,
                         max_action_length=max_action_length)
        self._state: dict[str, Any] = {}

    # state: items, counts, values, offer (by, keeps), offers_made, history {agent: [keeps...]}, deal, messages
    def _start(self, task: Task) -> tuple[Outcome, dict[str, str | None]]:
        d = task.definition
        self._state = {
            "items": list(d["items"]), "counts": list(d["counts"]), "values": {a: list(d["values"][a]) for a in AGENTS},
            "offer": None, "offers_made": 0, "history": {a: [] for a in AGENTS}, "deal": None, "message": {},
            "walked": None,
        }
        goals = {agent: self._goal(agent) for agent in AGENTS}
        first = {
            AGENTS[0]: f"{goals[AGENTS[0]]}\n\nYou move first: make an offer.",
            AGENTS[1]: f"{goals[AGENTS[1]]}\n\n{AGENTS[0]} moves first; wait for its offer.",
        }
        return self._outcome(first, AGENTS[0], rewards=None), goals

    def _goal(self, agent: str) -> str:
        s = self._state
        worth = ", ".join(f"{item} {value}" for item, value in zip(s["items"], s["values"][agent]))
        return (
            f"You are {agent}, negotiating with {_other(agent)} over a pool of {_describe(s['items'], s['counts'])}. "
            f"Your private value per item: {worth} (the whole pool is worth {TOTAL_VALUE} to you; the other side "
            f"values items differently and you cannot see how). Moves: 'offer "
            + " ".join(f"{i}=<n>" for i in s["items"])
            + f"' (the counts you keep; the rest go to {_other(agent)}), 'accept' (the offer on the table) or "
            f"'walk away' (no deal, 0 points each). Add '| <message>' to any move to talk. At most {MAX_OFFERS} "
            "offers are made in all; after the last one only accept or walk away remain. Your reward is the value "
            "of what you get."
        )

    def _clean_action(self, agent: str, action: str) -> tuple[str | None, str | None]:
        s = self._state
        (kind, _, _), problem = parse_move(action, s["items"], s["counts"])
        if problem is not None:
            return None, problem
        if kind == "accept" and (s["offer"] is None or s["offer"][0] == agent):
            return None, "there is no offer from the other side to accept; make an offer or walk away"
        if kind == "offer" and s["offers_made"] >= MAX_OFFERS:
            return None, "no offers are left: 'accept' the last offer or 'walk away'"
        return action, None

    def _advance(self, agent: str, action: str) -> Outcome:
        s = self._state
        other = _other(agent)
        (kind, keeps, message), _ = parse_move(action, s["items"], s["counts"])
        s["message"][agent] = message
        said = f'\n{agent} says: "{message}"' if message else ""
        if kind == "walk":
            s["walked"] = agent
            text = {agent: "You walked away. No deal: 0 points each.",
                    other: f"{agent} walked away. No deal: 0 points each.{said}"}
            return self._outcome(text, None, rewards=dict.fromkeys(AGENTS, 0.0))
        if kind == "accept":
            by, offered = s["offer"]
            s["deal"] = {by: list(offered), _other(by): [c - k for c, k in zip(s["counts"], offered)]}
            rewards = {a: float(_value(s["values"][a], s["deal"][a])) for a in AGENTS}
            text = {
                a: f"{'You' if a == agent else agent} accepted. Deal: you get {_describe(s['items'], s['deal'][a])}, "
                f"worth {rewards[a]:g} to you.{said if a == other else ''}"
                for a in AGENTS
            }
            return self._outcome(text, None, rewards=rewards)
        s["offer"] = (agent, keeps)
        s["offers_made"] += 1
        s["history"][agent].append(keeps)
        gives = [c - k for c, k in zip(s["counts"], keeps)]
        left = MAX_OFFERS - s["offers_made"]
        after = "This was the last offer: accept or walk away." if left == 0 else (
            f"{left} offer{'s' if left != 1 else ''} left. Accept, walk away, or make a counter-offer.")
        text = {
            agent: f"You offered to keep {_describe(s['items'], keeps)} and give {_describe(s['items'], gives)}. "
            f"Waiting for {other}.",
            other: f"{agent} offers: you get {_describe(s['items'], gives)} (worth "
            f"{_value(s['values'][other], gives)} to you); {agent} keeps {_describe(s['items'], keeps)}.{said}\n"
            f"{after}",
        }
        return self._outcome(text, other, rewards=None)

    def _outcome(self, text: dict[str, str], to_move: str | None, rewards: dict[str, float] | None) -> Outcome:
        s = self._state
        over = to_move is None
        transitions = {}
        for agent in AGENTS:
            reward = (rewards or {}).get(agent, 0.0)
            mine = _value(s["values"][agent], s["deal"][agent]) if s["deal"] else 0
            theirs = _value(s["values"][_other(agent)], s["deal"][_other(agent)]) if s["deal"] else 0
            moving = agent == to_move
            transitions[agent] = Transition(
                observation=text[agent],
                reward=reward,
                terminated=over,
                won=bool(s["deal"]) and mine > theirs,
                score=mine / TOTAL_VALUE,
                admissible_actions=self._legal_moves(agent) if moving else [],
                expert_action=self._scripted(agent) if moving else None,
                anchor_obs=self._anchor(agent, to_move),
                family_info=self._family_info(agent),
            )
        return Outcome(transitions, to_move)

    def _anchor(self, agent: str, to_move: str | None) -> str:
        """A key of the game state from ``agent``'s side: pool, own values, the offer on the table, offers
        made, the outcome and who moves; not the free-text messages, which change no state."""
        s = self._state
        offer = f"{s['offer'][0]} keeps {list(s['offer'][1])}" if s["offer"] is not None else "none"
        return (f"pool {dict(zip(s['items'], s['counts']))}; my values {list(s['values'][agent])}; offer {offer}; "
                f"offers made {s['offers_made']}; deal {s['deal']}; walked {s.get('walked')}; to move {to_move}")

    def move_list(self, agent: str) -> list[str]:
        """The move texts of :data:`OFFER_KEEPS` for this pool, then ``accept`` and ``walk away`` (127 moves)."""
        return [offer_text(self._state["items"], keeps) for keeps in OFFER_KEEPS] + ["accept", "walk away"]

    def _legal_moves(self, agent: str) -> list[str]:
        s = self._state
        moves = []
        if s["offers_made"] < MAX_OFFERS:
            moves += [offer_text(s["items"], k) for k in itertools.product(*(range(c + 1) for c in s["counts"]))]
        if s["offer"] is not None and s["offer"][0] != agent:
            moves.append("accept")
        return moves + ["walk away"]

    def _scripted(self, agent: str) -> str:
        s = self._state
        on_table = None
        if s["offer"] is not None and s["offer"][0] != agent:
            on_table = [c - k for c, k in zip(s["counts"], s["offer"][1])]
        return scripted_move(s["counts"], s["values"][agent], on_table, s["history"][_other(agent)],
                             s["offers_made"], s["items"])

    def _family_info(self, agent: str) -> dict[str, Any]:
        s = self._state
        offer = None
        if s["offer"] is not None:
            by, keeps = s["offer"]
            offer = {"by": by, "keeps": list(keeps), "gives": [c - k for c, k in zip(s["counts"], keeps)]}
        return {
            "items": list(s["items"]),
            "counts": list(s["counts"]),
            "my_values": list(s["values"][agent]),
            "offer": offer,
            "offers_left": MAX_OFFERS - s["offers_made"],
            "deal": {a: list(v) for a, v in s["deal"].items()} if s["deal"] else None,
            "walked_away": s["walked"],
            "message": s["message"].get(_other(agent), ""),
        }


# --------------------------------------------------------------------------- views
#: Opponents for the single-agent view: name -> factory taking the seed.
OPPONENTS = {"scripted": lambda seed: ScriptedNegotiator(), "random": lambda seed: RandomAgent(seed)}


class NegotiationEnv(SingleAgentView):
    """``agentgym/Negotiation-v0``: one seat of the negotiation against a scripted opponent (see the env card).

    Args:
        split: ``train``, ``valid`` or ``test``.
        max_turns: cap on the learner's moves (truncation).
        seat: ``player_0`` (opens) or ``player_1``.
        opponent: ``scripted`` (:class:`ScriptedNegotiator`) or ``random`` (uniform over legal moves).
        opponent_seed: seed of the random opponent.
        max_action_length: longer moves are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "Negotiation"

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 20,
        seat: str = "player_0",
        opponent: str = "scripted",
        opponent_seed: int = 0,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ):
        if opponent not in OPPONENTS:
            raise InvalidArgumentError(f"opponent must be one of {sorted(OPPONENTS)}, got {opponent!r}")
        game = NegotiationGame(split, max_turns=None, max_action_length=max_action_length)
        partners = {agent: OPPONENTS[opponent](opponent_seed) for agent in AGENTS if agent != seat}
        super().__init__(game, seat, partners, max_turns=max_turns, render_mode=render_mode)


#: The PettingZoo constructors: ``env(...)`` (AEC) and ``parallel_env(...)``, with NegotiationGame's arguments.
env, parallel_env = pettingzoo_constructors(NegotiationGame)
