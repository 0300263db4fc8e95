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
  not ``aec_to_parallel`` (see :mod:`agentgym.turngame`);
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

from collections.abc import Collection

from agentgym.agents import RandomAgent
from agentgym.envs.negotiation.engine import NegotiationGame
from agentgym.envs.negotiation.scripted import ScriptedNegotiator
from agentgym.envs.negotiation.tasks import AGENTS
from agentgym.error import InvalidArgumentError
from agentgym.multiagent import pettingzoo_constructors
from agentgym.turngame import SingleAgentView

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
        info_keys: accepted as by every family (:class:`~agentgym.core.TextEnv`); no Negotiation key is costly.
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
        info_keys: Collection[str] | None = None,
    ):
        if opponent not in OPPONENTS:
            raise InvalidArgumentError(f"opponent must be one of {sorted(OPPONENTS)}, got {opponent!r}")
        game = NegotiationGame(split, max_turns=None, max_action_length=max_action_length)
        partners = {agent: OPPONENTS[opponent](opponent_seed) for agent in AGENTS if agent != seat}
        super().__init__(game, seat, partners, max_turns=max_turns, render_mode=render_mode, info_keys=info_keys)


#: The PettingZoo constructors: ``env(...)`` (AEC) and ``parallel_env(...)``, with NegotiationGame's arguments.
env, parallel_env = pettingzoo_constructors(NegotiationGame, __name__)
