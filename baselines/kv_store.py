"""Attention KV of token sequences kept between ``generate`` calls, so a prompt that starts with a stored
sequence prefills only the rest (:class:`~agentgym.baselines.generation_builtin.BuiltinBackend`).

Two uses: a chat prompt's system message (the same in every turn and episode of a task), and, in the
append prompt mode, a turn's prompt + reply (the next turn's prompt starts with exactly those ids). An
entry is ``[(keys, values)]`` per layer, each ``[1, kv_heads, length, head_dim]``, the sequence's KV with
positions ``0 .. length-1`` and no padding.

Memory: ``2 * layers * kv_heads * head_dim * bytes`` per token. Qwen2.5-0.5B (24 layers, 2 KV heads of 64)
in bf16: 12 KiB per token, so the default budget of ``2**17`` tokens is at most 1.5 GiB; a 7B with 28
layers and 4 KV heads of 128: 56 KiB per token.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

Layers = list[tuple[Any, Any]]


class KVStore:
    """Least-recently-used store of sequence KV, bounded by ``max_entries`` and ``max_tokens`` (summed
    lengths; None: no token bound). Keys are token-id tuples."""

    def __init__(self, max_entries: int, max_tokens: int | None = None):
        self.max_entries, self.max_tokens = max_entries, max_tokens
        self._entries: OrderedDict[tuple[int, ...], Layers] = OrderedDict()
        self.tokens = 0  # summed lengths of the stored sequences

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        return iter(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def longest_prefix(self, prompt: tuple[int, ...]) -> tuple[int, ...]:
        """The longest stored key that is a proper prefix of ``prompt`` (at least one token of it is left
        to compute, whose logits start the reply); ``()`` when none is."""
        n, best = len(prompt), ()
        for key in self._entries:
            if len(best) < len(key) < n and prompt[: len(key)] == key:
                best = key
        return best

    def get(self, key: tuple[int, ...]) -> Layers:
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple[int, ...], layers: Layers) -> None:
        """Store ``layers`` under ``key`` (replacing an entry of that key), then drop the least recently used
        entries until both bounds hold; a sequence longer than ``max_tokens`` alone is not stored."""
        if self.max_tokens is not None and len(key) > self.max_tokens:
            return
        self.pop(key)
        self._entries[key] = layers
        self.tokens += len(key)
        while len(self._entries) > self.max_entries or (self.max_tokens is not None and self.tokens > self.max_tokens):
            self.pop(next(iter(self._entries)))

    def pop(self, key: tuple[int, ...]) -> None:
        if self._entries.pop(key, None) is not None:
            self.tokens -= len(key)

    def clear(self) -> None:
        self._entries.clear()
        self.tokens = 0


def row_layers(layers: Layers, row: int, valid: Any) -> Layers:
    """A copy of batch row ``row``'s KV at the cache columns where ``valid`` (a bool vector over the cache
    length) is True: the row's tokens without the padding, in order."""
    return [(k[row : row + 1, :, valid], v[row : row + 1, :, valid]) for k, v in layers]


def left_padded_layers(entries: list[Layers | None], width: int) -> Layers:
    """Per layer, the rows' stored KV left-padded with zeros to ``width`` columns and stacked into a batch
    (a None row: all padding); the attention mask must hide the padding."""
    import torch
    from torch.nn.functional import pad

    template = next(e for e in entries if e is not None)

    def column(entry: Layers | None, layer: int, which: int) -> Any:
        tensor = entry[layer][which] if entry is not None else template[layer][which][:, :, :0]
        return pad(tensor, (0, 0, width - tensor.shape[2], 0))

    return [
        tuple(torch.cat([column(e, layer, which) for e in entries]) for which in (0, 1))
        for layer in range(len(template))
    ]
