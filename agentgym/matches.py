"""Competitive games for the ratings table: round robins between agents on a competitive multi-agent env.

:func:`play_games` plays every pair of agents on the same seeded games, on both seat assignments, and stores each
game in the ``matches`` table of :mod:`agentgym.ratings` (Elo ratings are computed from it when shown).
From the command line::

    python -m agentgym.matches --agents expert random --games 100 --split test
    python -m agentgym.matches --agents expert mypackage.agents:MyAgent openai:http://localhost:8000/v1#my-model
    agentgym leaderboard --competitive

``--agents`` takes every spec ``agentgym eval --agent`` takes (:func:`agentgym.agents.make_agent`: a registered
name, a checkpoint or Hugging Face model folder, ``package.module:Class``, ``openai:BASE_URL#MODEL``), one JSON
``--agent-kwargs`` for all of them. In Negotiation the ``expert`` agent (:class:`~agentgym.agents.ExpertAgent`)
plays ``info["expert_action"]``, which is the scripted negotiator's move.

Example:
    >>> from agentgym.agents import RandomAgent
    >>> from agentgym.envs.negotiation import ScriptedNegotiator
    >>> with RatingStore(":memory:") as store:
    ...     _ = play_games(store, "agentgym/Negotiation-v0", "test", [ScriptedNegotiator(), RandomAgent(0)],
    ...                    games=4, seed=0)
    ...     [row.agent for row in store.ratings()]
    ['scripted_negotiator', 'random']
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from functools import partial

from agentgym.agents import Agent, make_agent
from agentgym.error import InvalidArgumentError
from agentgym.multiagent import multiagent_rollout
from agentgym.ratings import Match, RatingStore
from agentgym.rollout import EpisodeSpec
from agentgym.store import DEFAULT_DB

#: Competitive env ids -> their PettingZoo parallel constructors ("module:function"; strings, so the core
#: imports no family).
COMPETITIVE_ENVS = {"agentgym/Negotiation-v0": "agentgym.envs.negotiation:parallel_env"}


def _constructor(env_id: str):
    try:
        module, _, name = COMPETITIVE_ENVS[env_id].partition(":")
    except KeyError:
        raise InvalidArgumentError(
            f"{env_id!r} is not a competitive env; expected one of {sorted(COMPETITIVE_ENVS)}"
        ) from None
    return getattr(__import__(module, fromlist=[name]), name)


def play_games(
    store: RatingStore,
    env_id: str,
    split: str,
    agents: Sequence[Agent],
    *,
    games: int,
    seed: int = 0,
    num_workers: int = 1,
    envs_per_worker: int = 1,
) -> list[Match]:
    """Round robin: every pair of ``agents`` plays ``games`` seeded games on each seat assignment; stored.

    Agents are told apart by ``agent.name`` (names must differ). Game ``g`` uses seed ``seed + g`` (which picks
    the task), the same for every pair, so all pairs meet the same pools. ``num_workers`` processes of
    ``envs_per_worker`` games each play at a time (in this process when ``num_workers`` is 1).
    """
    names = [agent.name for agent in agents]
    if len(set(names)) != len(names) or len(agents) < 2:
        raise InvalidArgumentError(f"play_games needs at least two agents with distinct names, got {names}")
    make = partial(_constructor(env_id), split=split)
    probe = make()
    seats, manifest = list(probe.possible_agents), probe.manifest.hash
    probe.close()
    played: list[Match] = []
    for a, b in itertools.combinations(agents, 2):
        for order in ((a, b), (b, a)):
            specs = [
                EpisodeSpec(f"{order[0].name}-vs-{order[1].name}@{seed + g}", None, seed + g) for g in range(games)
            ]
            episodes = multiagent_rollout(
                make,
                dict(zip(seats, order)),
                specs,
                num_workers=num_workers,
                envs_per_worker=envs_per_worker,
                in_process=num_workers <= 1,
                env_id=env_id,
            )
            for spec, episode in zip(specs, episodes):
                ta, tb = episode[seats[order.index(a)]], episode[seats[order.index(b)]]
                played.append(
                    Match(
                        env_id,
                        split,
                        manifest,
                        ta.task_id,
                        spec.seed,
                        a.name,
                        b.name,
                        seats[order.index(a)],
                        seats[order.index(b)],
                        ta.total_reward,
                        tb.total_reward,
                    )
                )
    store.add(played)
    return played


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentgym.matches", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="agentgym/Negotiation-v0", choices=sorted(COMPETITIVE_ENVS))
    parser.add_argument(
        "--agents",
        nargs="+",
        default=["expert", "random"],
        metavar="SPEC",
        help="agents as for `agentgym eval --agent`: expert, random, a checkpoint or Hugging Face "
        "model folder, package.module:Class, openai:BASE_URL#MODEL",
    )
    parser.add_argument(
        "--agent-kwargs",
        default="{}",
        help="JSON object of options for every agent (format, temperature, ...), as for `agentgym eval --agent-kwargs`",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--games", type=int, default=100, help="games per pair and seat assignment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", default=DEFAULT_DB)
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.agent_kwargs)
        if not isinstance(kwargs, dict):
            raise InvalidArgumentError(f"--agent-kwargs must be a JSON object, got {args.agent_kwargs!r}")
        agents = [make_agent(spec, seed=args.seed, **kwargs) for spec in args.agents]
        with RatingStore(args.db) as store:
            played = play_games(
                store, args.env, args.split, agents, games=args.games, seed=args.seed, num_workers=args.workers
            )
    except (InvalidArgumentError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(played)} games stored in {args.db}; `agentgym leaderboard --competitive --db {args.db}` shows the ratings"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
