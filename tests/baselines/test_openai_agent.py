"""The OpenAI-compatible agent against a real local HTTP server speaking the chat-completions protocol.

The server (``http.server.ThreadingHTTPServer`` in a thread) plays a scripted policy and can be told to
answer one request with a 500, to stall one past the client's timeout, or to stall every request from some
attempt on; it records every request it got.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentgym.agents import make_agent
from agentgym.baselines.openai_agent import ModelServerError, OpenAIAgent
from agentgym.cli import main
from agentgym.store import ResultStore

ENV_ID = "agentgym/TextWorld-v0"


class Script:
    """What the server does with each request (numbered from 1 in arrival order), and what it saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: dict[int, str] = {}  # attempt -> "500" | "stall"
        self.stall_from: int | None = None
        self.delay = 0.0
        self.release = threading.Event()
        self.log: list[tuple[int, str, dict, dict]] = []  # (attempt, outcome, payload, headers)
        self.in_flight = self.max_in_flight = 0

    def reply(self, payload: dict) -> str:
        """The policy: echo a ``say N`` from the observation when asked, else look."""
        last = payload["messages"][-1]["content"]
        if last.startswith("say "):
            return f"Thought: echo.\nAction: {last.split()[0]} {last.split()[1]}"
        return "I should look around first.\nAction: look"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        script: Script = self.server.script  # type: ignore[attr-defined]
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with script.lock:
            attempt = len(script.log) + 1
            stall = script.stall_from is not None and attempt >= script.stall_from
            outcome = "stall" if stall else script.faults.get(attempt, "ok")
            if self.path != "/v1/chat/completions" or payload.get("model") == "no-such-model":
                outcome = "400"
            script.log.append((attempt, outcome, payload, dict(self.headers)))
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
        counted = True
        try:
            if outcome == "stall":
                script.release.wait(5.0)
            elif outcome in ("500", "400"):
                message = "scripted failure" if outcome == "500" else "The model `no-such-model` does not exist."
                self._send(int(outcome), {"error": {"message": message}})
            else:
                time.sleep(script.delay)
                prompt = sum(len(m["content"].split()) for m in payload["messages"])
                content = script.reply(payload)
                with script.lock:  # done before the answer leaves: the client may send its next request at once
                    script.in_flight -= 1
                    counted = False
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{attempt}",
                        "object": "chat.completion",
                        "model": payload["model"],
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7},
                    },
                )
        finally:
            if counted:
                with script.lock:
                    script.in_flight -= 1

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up on a stalled request
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    """``(base_url, script)`` of a fresh server; stalled requests are released at the end."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # a stalled client hanging up is expected
    httpd.script = Script()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd.script  # type: ignore[attr-defined]
    httpd.script.release.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


def test_turns_over_the_protocol_with_the_llm_agents_prompt_and_usage(server, monkeypatch):
    torch = pytest.importorskip("torch")
    from agentgym.baselines.llm_agent import LLMAgent, _Episode
    from agentgym.wrappers.lm import build_tiny_causal_lm, load_causal_lm

    url, script = server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    agent = make_agent(f"openai:{url}#tiny-model", seed=4, output_format="react", history=1, temperature=0.2)
    assert isinstance(agent, OpenAIAgent) and agent.name.startswith("openai:tiny-model@")
    info = {"goal": "Find the coin.", "admissible_actions": ["look", "go east"]}
    first = agent.act("You are in a kitchen.", info, episode_id="e")
    second = agent.act("You see a coin.", info, episode_id="e")
    assert (first.text, first.reply, first.info["parse"]) == ("look", script.reply(script.log[0][2]), "react")
    _, _, payload, headers = script.log[0]
    assert headers["Authorization"] == "Bearer sk-test"
    assert {k: payload[k] for k in ("model", "temperature", "max_tokens", "seed")} == {
        "model": "tiny-model",
        "temperature": 0.2,
        "max_tokens": 256,
        "seed": 4,
    }
    # the same prompt as the LLM agent's, history included
    torch.set_num_threads(1)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        llm = LLMAgent(*load_causal_lm(build_tiny_causal_lm(folder)), output_format="react", history=1, device="cpu")
    assert payload["messages"] == llm._messages(_Episode(), "You are in a kitchen.", info, "react", 0, None)
    past = _Episode(history=[("You are in a kitchen.", first.reply)])
    assert script.log[1][2]["messages"] == llm._messages(past, "You see a coin.", info, "react", 1, None)
    # token usage per turn and in total
    usage = second.info["usage"]
    assert usage["completion_tokens"] == 7 and usage["total_tokens"] == usage["prompt_tokens"] + 7
    assert usage["attempts"] == 1 and usage["seconds"] >= 0
    assert agent.stats["prompt_tokens"] == first.info["usage"]["prompt_tokens"] + usage["prompt_tokens"]
    assert (agent.stats["decisions"], agent.stats["requests"], agent.stats["retries"]) == (2, 2, 0)
    monkeypatch.delenv("OPENAI_API_KEY")
    OpenAIAgent(url, "tiny-model").act("x", {})
    assert "Authorization" not in script.log[-1][3]


def test_names_follow_model_and_settings_not_address():
    base = make_agent("openai:http://a:1/v1#m").name
    assert make_agent("openai:http://b:2/v1#m", timeout=5, concurrency=2, seed=3).name == base
    others = [
        make_agent("openai:http://a:1/v1#m2").name,
        make_agent("openai:http://a:1/v1#m", temperature=0.7).name,
        make_agent("openai:http://a:1/v1#m", history=0).name,
        make_agent("openai:http://a:1/v1#m", output_format="action").name,
    ]
    assert len({base, *others}) == 5
    with pytest.raises(Exception, match="output_format"):
        make_agent("openai:http://a:1/v1#m", output_format="choice")


def test_concurrency_limit_and_each_answer_stays_with_its_episode(server):
    url, script = server
    script.delay = 0.3
    agent = OpenAIAgent(url, "m", concurrency=2, history=0)
    observations = [f"say {k}" for k in range(5)]
    decisions = agent.act_batch(observations, [{}] * 5, [f"e{k}" for k in range(5)])
    assert [d.text for d in decisions] == observations
    assert script.max_in_flight == 2 and len(script.log) == 5


def test_a_refused_request_fails_at_once_with_the_servers_message(server):
    url, script = server
    agent = OpenAIAgent(url, "no-such-model", max_retries=3, backoff=0.01)
    with pytest.raises(ModelServerError, match="refused the request .*HTTP 400.*does not exist"):
        agent.act("x", {})
    assert len(script.log) == 1


def _rows(db):
    with ResultStore(db) as store:
        rows = store._db.execute(
            "SELECT agent, episode_index, task_id, episode_seed, turns, score FROM episodes ORDER BY episode_index"
        ).fetchall()
    return rows


def test_eval_retries_a_server_error_reports_a_timeout_and_resumes_without_loss(server, tmp_path, capsys):
    """Four 3-turn episodes on two workers (every reply is `look`, so each episode lasts 3 turns): attempt 2
    gets a 500 and attempt 4 stalls past the timeout, both retried; from attempt 9 on every request stalls,
    so a turn runs out of retries: the evaluation stops with a one-line error and keeps the finished
    episodes; once the server answers again, the same command plays only the missing ones."""
    url, script = server
    script.faults = {2: "500", 4: "stall"}
    script.stall_from = 9
    db = str(tmp_path / "r.sqlite")
    kwargs = {"timeout": 0.5, "max_retries": 2, "backoff": 0.01, "concurrency": 2, "output_format": "react"}
    argv = [
        "eval",
        "--env",
        ENV_ID,
        "--agent",
        f"openai:{url}#policy",
        "--agent-kwargs",
        json.dumps(kwargs),
        "--episodes",
        "4",
        "--max-turns",
        "3",
        "--workers",
        "2",
        "--db",
        db,
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("agentgym eval: ")
    assert "failed 3 attempts, last: timed out: no answer within 0.5 s" in err and "run it again to resume" in err
    # the failed and the stalled request were sent again and answered
    log = script.log
    for attempt in (2, 4):
        assert log[attempt - 1][1] != "ok"
        assert any(outcome == "ok" and payload == log[attempt - 1][2] for _, outcome, payload, _ in log[attempt:])
    stored = len(_rows(db))
    assert 1 <= stored < 4  # 1 or 2: the episodes that finished before the server stalled

    script.stall_from = None
    assert main(argv) == 0
    assert f"({stored} already stored, {4 - stored} played)" in capsys.readouterr().out
    rows = _rows(db)
    assert [row[1] for row in rows] == [0, 1, 2, 3] and all(row[4] == 3 for row in rows)

    # the same episodes as an evaluation that never met a fault
    clean = str(tmp_path / "clean.sqlite")
    assert main([*argv[:-2], clean, "--quiet"]) == 0
    assert _rows(clean) == rows
