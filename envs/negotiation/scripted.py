"""The scripted (Boulware) negotiator: the move behind ``info["expert_action"]`` (see the env card)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from agentgym.agents import ExpertAgent
from agentgym.envs.negotiation.moves import offer_text, value
from agentgym.envs.negotiation.tasks import MAX_OFFERS, TOTAL_VALUE


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
        on_table = value(my_values, offer_keeps_for_me)
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
        mine = value(my_values, keeps)
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
