"""DRRN: the Deep Reinforcement Relevance Network, the classic text-game baseline (He et al., 2016).

A DRRN scores every admissible action of a turn with Q(state, action) and plays the best one. Here the
state is the goal, the current observation and the previous turn's observation and action (so a reply
like "You are carrying nothing." still says where the agent stands). One GRU reads the state texts,
another the actions (the previous one included); a small MLP scores each (state, action) pair.
Words come from a word-level vocabulary built while training (no downloads); it is saved with the weights.

Training (Q-learning with replay and a target network) is in ``baselines/train_drrn.py``; the pieces it
shares with tests and evaluation are here: :class:`Vocab`, :class:`DRRN`, :class:`DRRNAgent`,
:class:`ReplayBuffer` and :func:`td_loss`.

Example:
    >>> agent = DRRNAgent(DRRNConfig(hidden_dim=16, embed_dim=8), device="cpu")
    >>> info = {"goal": "take the coin", "admissible_actions": ["go north", "take coin"]}
    >>> agent.act("You see a coin.", info, episode_id="e0") in info["admissible_actions"]
    True
    >>> state = agent.state("You see a coin.", info, "e1")
    >>> [q.shape for q in agent.q_values([state], [["look", "take coin"]])]
    [torch.Size([2])]

A trained agent is evaluated from its checkpoint folder: ``agentgym eval --agent runs/<run>/checkpoint``
loads it with :meth:`DRRNAgent.from_checkpoint` (greedy play).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from agentgym.agents import Agent
from agentgym.error import InvalidArgumentError

#: ``agent.json["kind"]`` of a DRRN checkpoint folder.
KIND = "drrn"
_WORD = re.compile(r"[a-z]+|[0-9]+")


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when present, else CPU; any other value is passed to :class:`torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Vocab:
    """Lower-case words and numbers to ids; punctuation and ASCII art are dropped.

    While ``frozen`` is False an unseen word gets the next id, until ``capacity`` ids exist; after that
    (and always once frozen, as in evaluation) unseen words map to ``<unk>``. Id 0 pads, id 1 is ``<unk>``.
    """

    PAD, UNK = 0, 1
    CACHE_SIZE = 100_000

    def __init__(self, capacity: int, words: Sequence[str] = ()):
        self.capacity = capacity
        self.words: list[str] = ["<pad>", "<unk>"]
        self.frozen = False
        self._index: dict[str, int] = {"<pad>": 0, "<unk>": 1}
        self._cache: dict[tuple[str, int], list[int]] = {}  # text -> ids (texts repeat every batch)
        for word in words:
            if word not in self._index:
                self._add(word)

    def _add(self, word: str) -> int:
        if len(self.words) >= self.capacity:
            return self.UNK
        self._index[word] = len(self.words)
        self.words.append(word)
        return self._index[word]

    def encode(self, text: str, max_tokens: int) -> list[int]:
        """The last ``max_tokens`` word ids of ``text`` (``[<pad>]`` when it has no word).

        The end is kept because text games put the newest facts last (the room after the intro banner).
        """
        key = (text, max_tokens)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        ids = []
        for word in _WORD.findall(text.lower()):
            index = self._index.get(word)
            if index is None:
                index = self.UNK if self.frozen else self._add(word)
            ids.append(index)
        ids = ids[-max_tokens:] or [self.PAD]
        if self.UNK not in ids:  # stable: these ids never change (an unk might become a word later)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = ids
        return ids

    def __len__(self) -> int:
        return len(self.words)


class State(NamedTuple):
    """What the DRRN reads of one turn: the goal, the observation, and the previous turn's ones."""

    goal: str
    observation: str
    previous_observation: str
    previous_action: str


@dataclasses.dataclass
class DRRNConfig:
    """Network and tokenizer sizes (saved in ``agent.json``)."""

    embed_dim: int = 32
    hidden_dim: int = 64
    vocab_size: int = 5000
    """capacity of the word vocabulary (and rows of the embedding table)"""
    max_tokens: int = 64
    """each text is cut to its last ``max_tokens`` words"""


class DRRN(nn.Module):
    """Q(state, action): a GRU over each state text, a GRU over actions, an MLP over both.

    A state is the state GRU's reading of its goal, observation and previous observation, and the action
    GRU's reading of the previous action. :meth:`forward` takes *unique* token sequences plus index
    tensors, so a text that occurs in many rows of a batch (the goal, ``go north``) is encoded once.
    """

    def __init__(self, config: DRRNConfig):
        super().__init__()
        hidden = config.hidden_dim
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=Vocab.PAD)
        self.state_gru = nn.GRU(config.embed_dim, hidden, batch_first=True)
        self.action_gru = nn.GRU(config.embed_dim, hidden, batch_first=True)
        self.state_mlp = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.ReLU())
        self.q_head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def encode(self, gru: nn.GRU, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """The hidden state of ``gru`` after each sequence's last token: ``[len(sequences), hidden_dim]``.

        Sequences are right-padded and the output at each one's last real token is taken (exact, since the
        GRU reads left to right); on CPU this runs about twice as fast as packed sequences, backward included.
        """
        device = self.embedding.weight.device
        last = torch.tensor([len(s) - 1 for s in sequences], device=device)
        padded = pad_sequence([torch.tensor(s, dtype=torch.long) for s in sequences], batch_first=True)
        outputs, _ = gru(self.embedding(padded.to(device)))
        return outputs[torch.arange(len(sequences), device=device), last]

    def forward(
        self,
        state_texts: Sequence[Sequence[int]],
        state_index: torch.Tensor,
        action_texts: Sequence[Sequence[int]],
        previous_action_index: torch.Tensor,
        action_index: torch.Tensor,
        owner: torch.Tensor,
    ) -> torch.Tensor:
        """Q-values ``[N]`` of N (state, action) pairs.

        ``state_index[b, k]`` is the row in ``state_texts`` of field k (goal, observation, previous
        observation) of state b, ``previous_action_index[b]`` the row in ``action_texts`` of its previous
        action; pair n scores action text ``action_index[n]`` in state ``owner[n]``.
        """
        texts = self.encode(self.state_gru, state_texts)
        actions = self.encode(self.action_gru, action_texts)
        fields = torch.cat([texts[state_index].flatten(1), actions[previous_action_index]], dim=1)  # [B, 4H]
        states = self.state_mlp(fields)  # [B, H]
        return self.q_head(torch.cat([states[owner], actions[action_index]], dim=1)).squeeze(1)


class _Unique:
    """Assigns each distinct text one row, so it is tokenized and encoded once per batch."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.rows.setdefault(text, len(self.rows))


class DRRNAgent(Agent):
    """A DRRN that picks among ``info["admissible_actions"]`` (``look`` when an env gives none).

    Exploration while training: with probability ``epsilon`` a uniform admissible action, otherwise the
    greedy one, or, with ``temperature > 0``, a sample from softmax(Q / temperature). The defaults (0, 0)
    play greedily, as evaluation does. ``grow_vocab=False`` freezes the vocabulary (unseen words -> unk).
    """

    name = "drrn"
    info_keys = frozenset({"admissible_actions"})

    def __init__(
        self,
        config: DRRNConfig | None = None,
        *,
        device: str = "auto",
        seed: int = 0,
        epsilon: float = 0.0,
        temperature: float = 0.0,
        network: DRRN | None = None,
        vocab: Vocab | None = None,
        grow_vocab: bool = True,
    ):
        self.config = config or DRRNConfig()
        self.device = resolve_device(device)
        if network is None:
            with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG left as it was
                torch.manual_seed(seed)
                network = DRRN(self.config)
            network = network.to(self.device)
        self.network = network
        self.vocab = vocab if vocab is not None else Vocab(self.config.vocab_size)
        self.grow_vocab = grow_vocab
        self.epsilon, self.temperature = epsilon, temperature
        self.rng = np.random.default_rng(seed)
        self._previous: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ state and scores
    def state(self, observation: str, info: Mapping[str, Any], episode_id: str = "") -> State:
        """The DRRN state of this turn of ``episode_id`` (its previous turn comes from :meth:`remember`)."""
        return State(str(info.get("goal") or ""), observation, *self._previous.get(episode_id, ("", "")))

    def remember(self, episode_id: str, observation: str, action: str) -> None:
        """Record the turn just played, so the next state of the episode shows it."""
        self._previous[episode_id] = (observation, action)

    def end_episode(self, episode_id: str) -> None:
        self._previous.pop(episode_id, None)

    def q_values(
        self, states: Sequence[State], action_lists: Sequence[Sequence[str]], network: DRRN | None = None
    ) -> list[torch.Tensor]:
        """Q-values of each state's actions (one tensor per state; empty for a state with no action).

        ``network`` defaults to the agent's; a trainer passes its target network here.
        """
        flat = self.q_flat(states, action_lists, network)
        return list(torch.split(flat, [len(actions) for actions in action_lists]))

    def q_flat(
        self, states: Sequence[State], action_lists: Sequence[Sequence[str]], network: DRRN | None = None
    ) -> torch.Tensor:
        """Q-values of every (state, action) pair, flattened in order (``[total number of actions]``)."""
        network = self.network if network is None else network
        state_rows, action_rows = _Unique(), _Unique()
        state_index = [[state_rows(text) for text in state[:3]] for state in states]
        previous_action_index = [action_rows(state.previous_action) for state in states]
        action_index = [action_rows(action) for actions in action_lists for action in actions]
        owner = [b for b, actions in enumerate(action_lists) for _ in actions]
        if not action_index:
            return torch.zeros(0, device=self.device)
        self.vocab.frozen = not self.grow_vocab
        tokens = self.config.max_tokens
        return network(
            [self.vocab.encode(text, tokens) for text in state_rows.rows],
            torch.tensor(state_index, device=self.device),
            [self.vocab.encode(text, tokens) for text in action_rows.rows],
            torch.tensor(previous_action_index, device=self.device),
            torch.tensor(action_index, device=self.device),
            torch.tensor(owner, device=self.device),
        )

    # ------------------------------------------------------------------ acting
    def choose(self, states: Sequence[State], action_lists: Sequence[Sequence[str]]) -> list[str]:
        """One action per state: greedy, epsilon-greedy or softmax (see the class docstring)."""
        with torch.no_grad():
            scores = [q.float().cpu().numpy() for q in self.q_values(states, action_lists)]
        chosen = []
        for actions, q in zip(action_lists, scores, strict=True):
            if self.epsilon > 0 and self.rng.random() < self.epsilon:
                pick = int(self.rng.integers(len(actions)))
            elif self.temperature > 0:
                p = np.exp((q - q.max()) / self.temperature)
                pick = int(self.rng.choice(len(actions), p=p / p.sum()))
            else:
                pick = int(np.argmax(q))
            chosen.append(actions[pick])
        return chosen

    def act_batch(
        self, observations: Sequence[str], infos: Sequence[Mapping[str, Any]], episode_ids: Sequence[str]
    ) -> list[str]:
        states = [self.state(o, i, e) for o, i, e in zip(observations, infos, episode_ids, strict=True)]
        actions = self.choose(states, [list(info.get("admissible_actions") or ["look"]) for info in infos])
        for observation, episode_id, action in zip(observations, episode_ids, actions, strict=True):
            self.remember(episode_id, observation, action)
        return actions

    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> str:
        return self.act_batch([observation], [info], [episode_id])[0]

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike, *, name: str | None = None) -> Path:
        """Write ``path/`` = ``agent.json`` (kind, config, name), ``weights.pt``, ``vocab.json``, atomically.

        ``name`` (say the run name) becomes the loaded agent's name in evaluation results; default
        ``drrn:<folder name>``.
        """
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        meta = {"kind": KIND, "name": name or f"{KIND}:{final.name}", **dataclasses.asdict(self.config)}
        (scratch / "agent.json").write_text(json.dumps(meta, indent=1))
        (scratch / "vocab.json").write_text(json.dumps(self.vocab.words))
        torch.save({k: v.cpu() for k, v in self.network.state_dict().items()}, scratch / "weights.pt")
        old = final.with_name(f".{final.name}-old-{os.getpid()}")
        if final.exists():
            os.rename(final, old)
        os.rename(scratch, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, device: str = "auto", seed: int = 0) -> DRRNAgent:
        """A greedy evaluation agent from a folder written by :meth:`save` (vocabulary frozen)."""
        folder = Path(path)
        try:
            meta = json.loads((folder / "agent.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidArgumentError(f"{folder}: not a DRRN checkpoint folder ({exc})") from None
        if meta.pop("kind", None) != KIND:
            raise InvalidArgumentError(f"{folder}/agent.json: kind is not {KIND!r}")
        name = meta.pop("name", f"{KIND}:{folder.name}")
        config = DRRNConfig(**meta)
        vocab = Vocab(config.vocab_size, json.loads((folder / "vocab.json").read_text()))
        agent = cls(config, device=device, seed=seed, vocab=vocab, grow_vocab=False)
        weights = torch.load(folder / "weights.pt", map_location=agent.device, weights_only=True)
        agent.network.load_state_dict(weights)
        agent.network.eval()
        agent.name = name
        return agent


# ---------------------------------------------------------------------- Q-learning pieces
class Transition(NamedTuple):
    state: State
    action: str
    reward: float
    next_state: State
    next_actions: tuple[str, ...]
    done: bool
    """terminated (won or lost): no bootstrap; a truncated episode still bootstraps"""


class ReplayBuffer:
    """Uniform replay, plus a priority part: ``priority_fraction`` of each batch is drawn from the
    transitions of episodes that earned reward (sparse-reward games rarely show a win otherwise)."""

    def __init__(self, capacity: int, priority_fraction: float = 0.0, seed: int = 0):
        if not 0.0 <= priority_fraction < 1.0:
            raise InvalidArgumentError(f"priority_fraction must be in [0, 1), got {priority_fraction}")
        self.capacity, self.priority_fraction = capacity, priority_fraction
        self.rng = np.random.default_rng(seed)
        self.parts: tuple[list[Transition], list[Transition]] = ([], [])  # (ordinary, priority)
        self._next = [0, 0]

    def add_episode(self, transitions: Sequence[Transition], priority: bool) -> None:
        part = int(priority and self.priority_fraction > 0)
        buffer = self.parts[part]
        for transition in transitions:
            if len(buffer) < self.capacity:
                buffer.append(transition)
            else:  # a ring: overwrite the oldest
                buffer[self._next[part]] = transition
                self._next[part] = (self._next[part] + 1) % self.capacity

    def __len__(self) -> int:
        return len(self.parts[0]) + len(self.parts[1])

    def sample(self, batch_size: int) -> list[Transition]:
        ordinary, priority = self.parts
        if not priority:
            n_priority = 0
        elif not ordinary:
            n_priority = batch_size
        else:
            n_priority = int(round(batch_size * self.priority_fraction))
        picks = [ordinary[i] for i in self.rng.integers(len(ordinary), size=batch_size - n_priority)]
        return picks + [priority[i] for i in self.rng.integers(len(priority), size=n_priority)]


def td_loss(
    agent: DRRNAgent, target: DRRN | None, batch: Sequence[Transition], gamma: float, double: bool = True
) -> torch.Tensor:
    """Huber loss between Q(s, a) and ``r + gamma * (1 - done) * max_a' Q_target(s', a')``.

    ``target=None`` bootstraps from the online network. With ``double``, a' is the online network's
    argmax and its value is read from the target network (double DQN). A next state with no action is worth 0.
    """
    next_states, next_actions = [t.next_state for t in batch], [list(t.next_actions) for t in batch]
    counts = [len(actions) for actions in next_actions]
    # one online pass scores Q(s, a) and, detached, the next states' actions (texts shared by s and s'
    # are encoded once); the target network scores the next states once more
    flat = agent.q_flat([t.state for t in batch] + next_states, [[t.action] for t in batch] + next_actions)
    q, online_next = flat[: len(batch)], torch.split(flat[len(batch) :].detach(), counts)
    with torch.no_grad():
        values = torch.zeros(len(batch), device=q.device)
        target_next = online_next
        if target is not None:
            target_next = torch.split(agent.q_flat(next_states, next_actions, target), counts)
        for b, (t_q, o_q) in enumerate(zip(target_next, online_next, strict=True)):
            if len(t_q):
                values[b] = t_q[o_q.argmax()] if double else t_q.max()
        rewards = torch.tensor([t.reward for t in batch], dtype=torch.float32, device=q.device)
        alive = torch.tensor([not t.done for t in batch], dtype=torch.float32, device=q.device)
        targets = rewards + gamma * alive * values
    return nn.functional.smooth_l1_loss(q, targets)
