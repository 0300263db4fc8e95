"""GPU throughput of the LLM trainer's two phases with a Qwen2.5-0.5B-shaped model (random weights).

* **rollout tokens/s**: :meth:`LLMAgent.generate` (the agent's batched sampling loop with the KV cache, as
  used in every rollout) for ``--batch`` prompts of ``--prompt-len`` tokens, ``--new-tokens`` each;
* **training tokens/s**: one PPO-clip update of :mod:`agentgym.baselines.train_pg` (``batch_logprobs`` +
  ``ppo_loss`` + backward over micro-batches + AdamW step) on rows of prompt + response, bf16 autocast,
  full fine-tuning and LoRA.

Weights are random (no download); the tokenizer is the tiny local BPE of
:func:`agentgym.wrappers.lm.build_tiny_causal_lm` (only its special tokens and chat template matter: the
replies are never decoded here). Without CUDA it prints a note and exits 0; ``--smoke`` then runs the same
code on CPU with a tiny model of the same family, to check the script itself.

Usage (one short call on a lent GPU, about 2 minutes)::

    python scripts/trainer_gpu_check.py --batch 64 --prompt-len 256 --new-tokens 128

For reference, plain ``transformers`` ``generate`` with default sampling gave about 900 tokens/s at batch 64
on an H100 for this shape.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def qwen25_05b_config(tokenizer, vocab_size: int, tiny: bool = False):
    from transformers import Qwen2Config

    shape = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14)
    if tiny:
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    return Qwen2Config(
        vocab_size=vocab_size,
        **shape,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=151936)
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

    from agentgym.baselines.llm_agent import LLMAgent
    from agentgym.baselines.train_pg import Args, _tensor_rows, batch_logprobs, ppo_loss
    from agentgym.wrappers.lm import build_tiny_causal_lm

    if args.smoke and device == "cpu":
        args.batch, args.prompt_len, args.new_tokens, args.vocab = 4, 16, 4, 1024
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke run, tiny model)"
    results: dict[str, float | str] = {"device": name, "torch": torch.__version__}
    tiny = build_tiny_causal_lm(tempfile.mkdtemp())
    tokenizer = AutoTokenizer.from_pretrained(str(tiny), local_files_only=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(qwen25_05b_config(tokenizer, args.vocab, tiny=device == "cpu"))
    results["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    agent = LLMAgent(model, tokenizer, device=device, bf16=True, max_new_tokens=args.new_tokens)
    agent.stop_ids = [-1]  # random weights: generate the full length every time
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(10, len(tokenizer), (args.batch, args.prompt_len), generator=gen).tolist()

    # rollout: the agent's batched sampling loop with the KV cache
    agent.generate(prompts[:4], [8] * 4)  # warm-up
    sync()
    tick = time.perf_counter()
    responses, logprobs = agent.generate(prompts, [args.new_tokens] * args.batch)
    sync()
    seconds = time.perf_counter() - tick
    generated = sum(len(r) for r in responses)
    results["rollout_tokens_per_s"] = generated / seconds
    results["rollout_seconds"] = seconds
    results["rollout_generated_tokens"] = generated

    # training: one PPO-clip update over the same rows (full fine-tuning, then LoRA)
    rows = [
        {"ids": p + r, "start": len(p), "adv": 1.0 if k % 2 else -1.0, "old": lp}
        for k, (p, r, lp) in enumerate(zip(prompts, responses, logprobs))
    ]

    def update(policy, label: str) -> None:
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-6)
        train_args = Args()
        n_tokens = sum(len(r["ids"]) - r["start"] for r in rows)
        for _attempt in ("warmup", "timed"):
            sync()
            tick = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            for i in range(0, len(rows), args.micro_batch):
                chunk = rows[i : i + args.micro_batch]
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

        config = LoraConfig(
            r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"
        )
        lora = get_peft_model(model, config)
        update(lora, "lora")
    except ImportError:
        results["train_lora"] = "peft not installed"
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
