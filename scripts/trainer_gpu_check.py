"""GPU throughput of the LLM trainer's two phases with a Qwen2.5-0.5B-shaped model (random weights), in one run.

Install, from the repo root of a checkout on a bare CUDA machine (Python 3.11+), with ONE command::

    python -m pip install -e ".[vllm,textworld]"

``[vllm]`` brings vLLM 0.33.0, which pins ``torch==2.14.0`` (PyPI's Linux wheel of torch is the CUDA build;
its CUDA libraries come as ``nvidia-*`` wheels) and ``transformers>=5.16.1,<5.21``, plus the trainer's other
requirements (peft, PyYAML, tyro, ...). Do not add ``[train]`` or ``[all]``: their ``torch==2.13.0`` and
``transformers==5.24.0`` are the CPU CI pins and conflict with vLLM's. Without vLLM,
``python -m pip install -e ".[train,textworld]"`` measures everything but the vLLM rows.

Then (about 5 minutes on an H100/H200)::

    python scripts/trainer_gpu_check.py --out gpu_check.json [--end-to-end]

What it measures:

* **rollout tokens/s** of each generation backend (:mod:`agentgym.baselines.generation`) at batch 1, 16,
  64 and 256, ``--prompt-len`` random prompt tokens and ``--new-tokens`` generated per row (no stop token,
  so every row runs to the length): ``hf-generate`` (transformers' ``model.generate``, the reference) with
  sampling and greedy, ``builtin`` (our KV-cache loop) with sampling, and ``vllm`` with sampling when vLLM
  is installed (its start-up and one weight :meth:`sync` are timed too). Every backend samples with bf16
  weights (the hf-generate reference runs on a bf16 copy of the policy), so ratios compare the loops, not
  dtypes;
* **training tokens/s**: one PPO-clip update (``batch_logprobs`` + ``ppo_loss`` + backward over
  micro-batches + AdamW step) on ``--train-batch`` rows of prompt + response, bf16 autocast, full
  fine-tuning and LoRA;
* with ``--end-to-end``: a TextWorld rollout of the LLM agent on the builtin backend (and vLLM when
  installed) with ``--in-flight`` (64) episodes in flight over 8 env workers, and the share of the wall
  time spent inside the backend's ``generate`` (the GPU generating) and the mean generation batch.

It prints a table of tokens/s with the ratios builtin / hf-generate and vllm / hf-generate (sampling) at
each batch, the issue's goals beside the numbers (builtin >= 10x hf-generate at batch 64; vLLM >= 30k
tokens/s at batch 64; end-to-end generating >= 70% of the wall time), then one JSON block (also written
to ``--out``). Weights are random (no download); the tokenizer is the tiny local BPE of
:func:`agentgym.wrappers.lm.build_tiny_causal_lm` (only its special tokens and chat template matter).
Without CUDA it prints a note and exits 0; ``--smoke`` then runs the same code on CPU with a tiny model of
the same family (vLLM skipped when absent), to check the script itself.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

BATCHES = (1, 16, 64, 256)
GOALS = {
    "builtin_over_hf_generate_at_64": 10.0,
    "vllm_tokens_per_s_at_64": 30000.0,
    "end_to_end_generating_share": 0.70,
}


def qwen25_05b_config(tokenizer, vocab_size: int, tiny: bool = False):
    from transformers import Qwen2Config

    shape = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14)
    if tiny:
        shape = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
    return Qwen2Config(
        vocab_size=vocab_size,
        **shape,
        num_key_value_heads=2 if not tiny else 1,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


class TimedBackend:
    """A backend whose ``generate`` calls are timed and their batch sizes counted (the end-to-end share)."""

    def __init__(self, backend):
        self.inner = backend
        self.name, self.shares_policy = backend.name, backend.shares_policy
        self.seconds, self.calls, self.rows = 0.0, 0, 0

    @property
    def generator(self):
        return self.inner.generator

    def generate(self, prompt_token_ids, sampling):
        tick = time.perf_counter()
        out = self.inner.generate(prompt_token_ids, sampling)  # returns host lists: the device is done
        self.seconds += time.perf_counter() - tick
        self.calls += 1
        self.rows += len(prompt_token_ids)
        return out

    def set_weights(self, weights):
        self.inner.set_weights(weights)

    def sync(self):
        self.inner.sync()

    def close(self):
        self.inner.close()


def rollout_rates(backend, prompts, new_tokens: int, batches, greedy: bool, sync) -> dict[int, float]:
    """tokens/s of ``backend.generate`` on the first ``b`` prompts, for each ``b`` of ``batches``."""
    from agentgym.baselines.generation import Sampling

    sampling = Sampling(max_new_tokens=new_tokens, greedy=greedy)
    backend.generate(prompts[:2], Sampling(max_new_tokens=4, greedy=greedy))  # warm-up (kernels, graphs)
    rates = {}
    for batch in batches:
        sync()
        tick = time.perf_counter()
        out = backend.generate(prompts[:batch], sampling)
        sync()
        rates[batch] = sum(len(g.token_ids) for g in out) / (time.perf_counter() - tick)
    return rates


def training_rates(model, prompts, responses, logprobs, device, micro_batch, sync, results) -> None:
    """One PPO-clip update over the rows, full fine-tuning then LoRA; tokens/s (prompt + response)."""
    import torch

    from agentgym.baselines.ppo import _tensor_rows, batch_logprobs, ppo_loss
    from agentgym.baselines.train_pg import Args

    rows = [
        {"ids": p + r, "start": len(p), "adv": 1.0 if k % 2 else -1.0, "old": lp, "allowed": None}
        for k, (p, r, lp) in enumerate(zip(prompts, responses, logprobs))
    ]

    def update(policy, label: str) -> None:
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-6)
        train_args = Args()
        n_tokens = sum(len(r["ids"]) - r["start"] for r in rows)
        for _attempt in ("warm-up", "timed"):
            sync()
            tick = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            for i in range(0, len(rows), micro_batch):
                chunk = rows[i : i + micro_batch]
                logp, mask = batch_logprobs(policy, chunk, device, 1.0, bf16=True)
                old = _tensor_rows(chunk, "old", logp.shape[1], device)
                adv = torch.tensor([r["adv"] for r in chunk], device=device)
                loss, _ = ppo_loss(logp, old, None, adv, mask, train_args, n_tokens)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            sync()
            seconds = time.perf_counter() - tick
        results[f"train_{label}_tokens_per_s"] = sum(len(r["ids"]) for r in rows) / seconds
        results[f"train_{label}_seconds"] = seconds
        if device == "cuda":
            results[f"train_{label}_peak_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30

    model.train()
    update(model, "full")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        results["train_lora"] = "peft not installed"
        return
    config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    update(get_peft_model(model, config), "lora")


def end_to_end(model, tokenizer, device, backend_name, args, results) -> None:
    """TextWorld rollout of the LLM agent with ``args.in_flight`` episodes in flight; share of wall time
    inside ``generate`` and the mean generation batch."""
    import functools

    import gymnasium as gym

    from agentgym.baselines.generation import make_backend
    from agentgym.baselines.llm_agent import LLMAgent
    from agentgym.rollout import EpisodeSpec, rollout

    kwargs = {"gpu_memory_utilization": 0.3} if backend_name == "vllm" else {}
    timed = TimedBackend(make_backend(backend_name, model, tokenizer, device=device, seed=0, **kwargs))
    try:
        agent = LLMAgent(model, tokenizer, device=device, max_new_tokens=args.e2e_new_tokens, backend=timed)
        workers = min(8, args.in_flight)
        specs = [EpisodeSpec(f"e2e/{k}", None, k) for k in range(2 * args.in_flight)]
        env_fn = functools.partial(gym.make, "agentgym/TextWorld-v0", max_turns=args.e2e_turns)
        turns = []
        tick = time.perf_counter()
        trajectories = rollout(
            env_fn, agent, specs, num_workers=workers, envs_per_worker=args.in_flight // workers, on_turn=turns.append
        )
        wall = time.perf_counter() - tick
    finally:
        timed.close()
    key = f"e2e_{backend_name}"
    results[f"{key}_episodes"] = len(trajectories)
    results[f"{key}_wall_s"] = wall
    results[f"{key}_generating_share"] = timed.seconds / wall
    results[f"{key}_mean_generation_batch"] = timed.rows / max(timed.calls, 1)
    results[f"{key}_max_generation_batch"] = max(turns, default=0)
    results[f"{key}_turns_per_s"] = sum(turns) / wall


def report(results: dict, batches) -> None:
    """The table: tokens/s per backend and batch, ratios, goals."""
    rows = [("hf-generate (sampling)", "hf_sample"), ("hf-generate (greedy)", "hf_greedy")]
    rows += [("builtin (sampling)", "builtin_sample"), ("vllm (sampling)", "vllm_sample")]
    print(f"\nrollout tokens/s ({results['device']}, {results['params_M']:.0f}M params)")
    print(f"{'backend':<26}" + "".join(f"{'batch ' + str(b):>14}" for b in batches))
    for label, key in rows:
        if f"{key}_{batches[0]}" in results:
            print(f"{label:<26}" + "".join(f"{results[f'{key}_{b}']:>14,.0f}" for b in batches))
    for name in ("builtin", "vllm"):
        if f"{name}_sample_{batches[0]}" in results:
            ratios = {b: results[f"{name}_sample_{b}"] / results[f"hf_sample_{b}"] for b in batches}
            results.update({f"ratio_{name}_over_hf_{b}": r for b, r in ratios.items()})
            print(f"{name + ' / hf-generate':<26}" + "".join(f"{ratios[b]:>13.1f}x" for b in batches))
    print("\ngoals (issue 19):")
    if "ratio_builtin_over_hf_64" in results:
        got = results["ratio_builtin_over_hf_64"]
        print(f"  builtin >= {GOALS['builtin_over_hf_generate_at_64']:.0f}x hf-generate at batch 64: {got:.1f}x")
    if "vllm_sample_64" in results:
        print(
            f"  vllm >= {GOALS['vllm_tokens_per_s_at_64']:,.0f} tokens/s at batch 64: {results['vllm_sample_64']:,.0f}"
        )
    else:
        print(
            f"  vllm >= {GOALS['vllm_tokens_per_s_at_64']:,.0f} tokens/s at batch 64: not measured ({results['vllm']})"
        )
    for key in ("e2e_builtin", "e2e_vllm"):
        if f"{key}_generating_share" in results:
            share, batch = results[f"{key}_generating_share"], results[f"{key}_mean_generation_batch"]
            print(
                f"  {key}: generating >= {GOALS['end_to_end_generating_share']:.0%} of wall time: {share:.0%} "
                f"(mean generation batch {batch:.1f})"
            )
    for label in ("full", "lora"):
        if f"train_{label}_tokens_per_s" in results:
            print(f"training ({label}): {results[f'train_{label}_tokens_per_s']:,.0f} tokens/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--train-batch", type=int, default=64, help="rows of one PPO update")
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--no-vllm", action="store_true", help="skip vLLM even when installed")
    parser.add_argument("--end-to-end", action="store_true", help="also a TextWorld rollout with many in flight")
    parser.add_argument("--in-flight", type=int, default=64, help="episodes in flight in --end-to-end")
    parser.add_argument("--e2e-turns", type=int, default=8)
    parser.add_argument("--e2e-new-tokens", type=int, default=48)
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    parser.add_argument("--smoke", action="store_true", help="without CUDA: run on CPU with a tiny model")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        print("trainer_gpu_check: no CUDA device; nothing measured (run it on a GPU machine, or --smoke).")
        return 0
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    from agentgym.baselines.generation import make_backend
    from agentgym.wrappers.lm import build_tiny_causal_lm

    batches = BATCHES
    if device == "cpu":  # the smoke run: the same code on a tiny model
        batches, args.prompt_len, args.new_tokens, args.vocab = (1, 4), 16, 4, 1024
        args.train_batch, args.in_flight, args.e2e_turns, args.e2e_new_tokens = 4, 4, 2, 8
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke run, tiny model)"
    results: dict = {"device": name, "torch": torch.__version__, "batches": list(batches)}
    results |= {"prompt_len": args.prompt_len, "new_tokens": args.new_tokens}
    tiny = build_tiny_causal_lm(tempfile.mkdtemp())
    tokenizer = AutoTokenizer.from_pretrained(str(tiny), local_files_only=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(qwen25_05b_config(tokenizer, args.vocab, tiny=device == "cpu")).to(device)
    model.generation_config.eos_token_id = None  # random weights: every row runs to the length
    results["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(10, len(tokenizer), (max(batches), args.prompt_len), generator=gen).tolist()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    # rollout: the reference (transformers' generate on a bf16 copy), the builtin loop, vLLM
    reference = copy.deepcopy(model).to(dtype).eval()
    hf = make_backend("hf-generate", reference, tokenizer, device=device, seed=0)
    for key, greedy in (("hf_sample", False), ("hf_greedy", True)):
        for b, rate in rollout_rates(hf, prompts, args.new_tokens, batches, greedy, sync).items():
            results[f"{key}_{b}"] = rate
    del hf, reference
    builtin = make_backend("builtin", model, tokenizer, device=device, seed=0)
    for b, rate in rollout_rates(builtin, prompts, args.new_tokens, batches, False, sync).items():
        results[f"builtin_sample_{b}"] = rate
    out = builtin.generate(prompts[: args.train_batch], [_sampling(args.new_tokens)] * args.train_batch)
    builtin.close()
    del builtin
    use_vllm = not args.no_vllm and importlib.util.find_spec("vllm") is not None and device == "cuda"
    results["vllm"] = "measured" if use_vllm else ("not installed" if not args.no_vllm else "skipped (--no-vllm)")
    if device == "cpu" and importlib.util.find_spec("vllm") is not None:
        results["vllm"] = "skipped (needs CUDA)"
    if use_vllm:
        tick = time.perf_counter()
        vllm = make_backend("vllm", model, tokenizer, device=device, seed=0, gpu_memory_utilization=0.3)
        results["vllm_startup_s"] = time.perf_counter() - tick
        for b, rate in rollout_rates(vllm, prompts, args.new_tokens, batches, False, sync).items():
            results[f"vllm_sample_{b}"] = rate
        tick = time.perf_counter()
        vllm.sync()
        results["vllm_sync_s"] = time.perf_counter() - tick
        vllm.close()
        del vllm
    if device == "cuda":
        torch.cuda.empty_cache()

    if args.end_to_end:
        for backend_name in ("builtin", "vllm") if use_vllm else ("builtin",):
            with _noted(results, f"e2e_{backend_name}"):
                end_to_end(model, tokenizer, device, backend_name, args, results)

    # training: one PPO-clip update over rows of the builtin backend's samples
    responses, logprobs = [g.token_ids for g in out], [g.logprobs for g in out]
    training_rates(model, prompts[: args.train_batch], responses, logprobs, device, args.micro_batch, sync, results)

    report(results, batches)
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    failed = [key for key in results if key.endswith("_error")]
    if failed:
        print(f"trainer_gpu_check: failed parts: {failed}", file=sys.stderr)
    return 1 if failed else 0


def _sampling(new_tokens: int):
    from agentgym.baselines.generation import Sampling

    return Sampling(max_new_tokens=new_tokens)


@contextlib.contextmanager
def _noted(results: dict, key: str):
    """Run a part; a failure is recorded in the results (and printed) rather than losing the other numbers."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - a GPU check reports what broke and goes on
        results[f"{key}_error"] = f"{type(exc).__name__}: {exc}"
        print(f"trainer_gpu_check: {key} failed: {results[f'{key}_error']}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
