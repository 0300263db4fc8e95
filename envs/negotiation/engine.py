"""The negotiation rules as a :class:`~agentgym.turngame.TurnGame` (see the env card in :mod:`.env`)."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from typing import Any

from agentgym.core import Transition
from agentgym.envs.negotiation.moves import OFFER_KEEPS, describe, offer_text, parse_move, value
from agentgym.envs.negotiation.scripted import scripted_move
from agentgym.envs.negotiation.tasks import AGENTS, MAX_OFFERS, SUITE_VERSION, TOTAL_VALUE, split_tasks
from agentgym.tasks import Task, TaskSplit
from agentgym.turngame import Outcome, TurnGame


def other_agent(agent: str) -> str:
    """The other player."""
    return AGENTS[1 - AGENTS.index(agent)]


class NegotiationGame(TurnGame):
    """The negotiation rules as a :class:`~agentgym.turngame.TurnGame` (see the env card).

    Args:
        split: ``train``, ``valid`` or ``test``.
        max_turns: cap on the moves of both agents (``None``: no cap).
        max_action_length: longer moves are answered as invalid.
        info_keys: accepted as by every family; no Negotiation key is costly.
    """

    family = "Negotiation"
    possible_agents = AGENTS
    copyable = True  # its state is the dict below

    def __init__(
        self,
        split: str = "train",
        max_turns: int | None = 40,
        max_action_length: int = 4096,
        info_keys: Collection[str] | None = None,
    ):
        self.engine_version = f"agentgym negotiation v{SUITE_VERSION}"
        super().__init__(
            TaskSplit(split, split_tasks(split), self.engine_version),
            max_turns=max_turns,
            max_action_length=max_action_length,
            info_keys=info_keys,
        )
        self._state: dict[str, Any] = {}

    # state: items, counts, values, offer (by, keeps), offers_made, history {agent: [keeps...]}, deal, messages
    def _start(self, task: Task) -> tuple[Outcome, dict[str, str | None]]:
        d = task.definition
        self._state = {
            "items": list(d["items"]),
            "counts": list(d["counts"]),
            "values": {a: list(d["values"][a]) for a in AGENTS},
            "offer": None,
            "offers_made": 0,
            "history": {a: [] for a in AGENTS},
            "deal": None,
            "message": {},
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
            f"You are {agent}, negotiating with {other_agent(agent)} over a pool of {describe(s['items'], s['counts'])}. "
            f"Your private value per item: {worth} (the whole pool is worth {TOTAL_VALUE} to you; the other side "
            f"values items differently and you cannot see how). Moves: 'offer "
            + " ".join(f"{i}=<n>" for i in s["items"])
            + f"' (the counts you keep; the rest go to {other_agent(agent)}), 'accept' (the offer on the table) or "
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
        other = other_agent(agent)
        (kind, keeps, message), _ = parse_move(action, s["items"], s["counts"])
        s["message"][agent] = message
        said = f'\n{agent} says: "{message}"' if message else ""
        if kind == "walk":
            s["walked"] = agent
            text = {
                agent: "You walked away. No deal: 0 points each.",
                other: f"{agent} walked away. No deal: 0 points each.{said}",
            }
            return self._outcome(text, None, rewards=dict.fromkeys(AGENTS, 0.0))
        if kind == "accept":
            by, offered = s["offer"]
            s["deal"] = {by: list(offered), other_agent(by): [c - k for c, k in zip(s["counts"], offered)]}
            rewards = {a: float(value(s["values"][a], s["deal"][a])) for a in AGENTS}
            text = {
                a: f"{'You' if a == agent else agent} accepted. Deal: you get {describe(s['items'], s['deal'][a])}, "
                f"worth {rewards[a]:g} to you.{said if a == other else ''}"
                for a in AGENTS
            }
            return self._outcome(text, None, rewards=rewards)
        s["offer"] = (agent, keeps)
        s["offers_made"] += 1
        s["history"][agent].append(keeps)
        gives = [c - k for c, k in zip(s["counts"], keeps)]
        left = MAX_OFFERS - s["offers_made"]
        after = (
            "This was the last offer: accept or walk away."
            if left == 0
            else (f"{left} offer{'s' if left != 1 else ''} left. Accept, walk away, or make a counter-offer.")
        )
        text = {
            agent: f"You offered to keep {describe(s['items'], keeps)} and give {describe(s['items'], gives)}. "
            f"Waiting for {other}.",
            other: f"{agent} offers: you get {describe(s['items'], gives)} (worth "
            f"{value(s['values'][other], gives)} to you); {agent} keeps {describe(s['items'], keeps)}.{said}\n"
            f"{after}",
        }
        return self._outcome(text, other, rewards=None)

    def _outcome(self, text: dict[str, str], to_move: str | None, rewards: dict[str, float] | None) -> Outcome:
        s = self._state
        over = to_move is None
        transitions = {}
        for agent in AGENTS:
            reward = (rewards or {}).get(agent, 0.0)
            mine = value(s["values"][agent], s["deal"][agent]) if s["deal"] else 0
            theirs = value(s["values"][other_agent(agent)], s["deal"][other_agent(agent)]) if s["deal"] else 0
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
        return (
            f"pool {dict(zip(s['items'], s['counts']))}; my values {list(s['values'][agent])}; offer {offer}; "
            f"offers made {s['offers_made']}; deal {s['deal']}; walked {s.get('walked')}; to move {to_move}"
        )

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
        return scripted_move(
            s["counts"], s["values"][agent], on_table, s["history"][other_agent(agent)], s["offers_made"], s["items"]
        )

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
            "message": s["message"].get(other_agent(agent), ""),
        }
