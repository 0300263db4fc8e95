"""Shared test setup: one CPU thread per process (parallelism comes from pytest-xdist and env workers)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
