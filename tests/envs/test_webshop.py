"""WebShop: catalog, goals and splits, BM25 search, state machine, reward, oracle, users' data, HTML mode."""

import json
import math
import random
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import gymnasium as gym
import pytest

import agentgym  # noqa: F401
from agentgym.envs.webshop import tasks as tasks_mod
from agentgym.envs.webshop.catalog import Catalog, generate_raw
from agentgym.envs.webshop.pages import react_page
from agentgym.envs.webshop.reward import compute_reward, normalize_color, token_set_ratio, type_reward
from agentgym.envs.webshop.search import K1, B, SearchEngine
from agentgym.envs.webshop.tasks import clean_products, split_goals, synthetic_goals
from agentgym.error import InvalidArgumentError, TaskFileError

ENV_ID = "agentgym/WebShop-v0"


@pytest.fixture(scope="module")
def env():
    env = gym.make(ENV_ID, split="test")
    yield env
    env.close()


# ----------------------------------------------------------------------------- catalog and goals
def test_generated_catalog_is_deterministic_and_in_upstream_schema():
    first, second = generate_raw(7, 400), generate_raw(7, 400)
    assert first == second and generate_raw(8, 400) != first
    items, instructions = first
    assert len(items) == 400 and len({i["asin"] for i in items}) == 400
    for item in items:
        assert set(item) >= {
            "asin",
            "name",
            "category",
            "query",
            "product_category",
            "full_description",
            "small_description",
            "pricing",
            "customization_options",
            "images",
            "name_nouns",
        }
        assert item["pricing"].startswith("$") and " › " in item["product_category"]
        assert instructions[item["asin"]]["attributes"]


def test_default_catalog_size_categories_and_splits(env):
    catalog = env.unwrapped.catalog
    assert len(catalog.products) >= 10_000
    assert len({p["category"] for p in catalog.products}) >= 5
    assert sum(bool(p["options"]) for p in catalog.products) > 5_000
    assert all(p["name_nouns"] and p["BulletPoints"] and p["Description"] for p in catalog.products)
    sizes = {split: len(split_goals(catalog, split)) for split in ("test", "valid", "train")}
    assert sizes["test"] == 500 and sizes["valid"] == 1000 and sizes["train"] == len(catalog.goals) - 1500
    assert env.unwrapped.task_ids[:2] == ["fixed_0", "fixed_1"] and env.unwrapped.task_ids[-1] == "fixed_499"
    goal = catalog.goals[0]
    assert goal["instruction_text"].endswith("dollars") or goal["price_upper"] == tasks_mod.NO_PRICE_CAP
    assert catalog.by_asin[goal["asin"]]["Price"] <= goal["price_upper"]


def test_synthetic_goals_follow_upstream_rules():
    products = clean_products(
        [
            {
                "asin": "B1",
                "name": "Acme Red Mug",
                "category": "home",
                "query": "Mug",
                "product_category": "A › B",
                "pricing": "$12.50",
                "customization_options": {
                    "Color": [{"value": "Red"}, {"value": "Navy/Blue"}],
                    "Size": [{"value": " Large "}],
                },
            },
            {"asin": "B2", "name": "Other", "pricing": "$995.00"},
        ],
        {
            "B1": {
                "attributes": ["dishwasher safe", "large"],
                "instruction": "i want a dishwasher safe mug",
                "instruction_attributes": ["dishwasher safe"],
            },
            "B2": {"attributes": ["x"], "instruction": "i want x", "instruction_attributes": ["x"]},
        },
    )
    assert products[0]["options"] == {"color": ["red", "navy | blue"], "size": ["large"]}
    goals = synthetic_goals(products, random.Random(0))
    mug = [g for g in goals if g["asin"] == "B1"]
    assert len(mug) == 2  # one goal per option combination
    assert mug[0]["goal_options"] == {"color": "red", "size": "large"}
    # the cap is the larger of two of the next four caps above $12.50: 30 or 40 or 50
    assert mug[0]["price_upper"] in (30.0, 40.0, 50.0)
    assert mug[0]["instruction_text"] == (
        f"i want a dishwasher safe mug with color: red, and size: large, and price lower than {mug[0]['price_upper']:.2f} dollars"
    )
    other = next(g for g in goals if g["asin"] == "B2")  # over $980: no cap, no price text
    assert other["price_upper"] == 1_000_000 and other["instruction_text"] == "i want x"
    assert mug[0]["weight"] == 1.0


# ----------------------------------------------------------------------------- reward
PRODUCT = {
    "asin": "B0TEST",
    "Title": "Zed Long-Lasting Wireless Headphones",
    "query": "headphones",
    "product_category": "Electronics › Audio › Headphones",
    "BulletPoints": ["40h battery life"],
    "Description": "Foldable and light.",
    "Attributes": ["long lasting", "noise cancelling"],
    "name_nouns": ["zed", "headphones"],
}


def goal(**changes):
    base = {
        "attributes": ["long lasting", "foldable"],
        "goal_options": {"color": "black", "size": "large"},
        "price_upper": 50.0,
        "query": "headphones",
        "product_category": PRODUCT["product_category"],
        "name_nouns": ["zed", "headphones"],
    }
    return {**base, **changes}


def test_reward_hand_computed_case():
    # attributes 2/2 (fuzzy + description), options 1/2, price 1, type 1 -> (2 + 1 + 1) / (2 + 2 + 1)
    reward, parts = compute_reward(PRODUCT, {"color": "black", "size": "small"}, 29.99, goal())
    assert reward == pytest.approx(0.8)
    assert parts["r_att"] == 1.0 and parts["r_option"] == 0.5 and parts["r_price"] and parts["r_type"] == 1.0
    assert parts["w_att"] == pytest.approx(0.4) and parts["w_option"] == pytest.approx(0.4)
    assert parts["w_price"] == pytest.approx(0.2)


def test_reward_attributes_fuzzy_and_text_fallback():
    # "Long Lasting!" matches "long lasting" by token set ratio; "40h battery" is in the bullets;
    # "waterproof" is nowhere
    product = {**PRODUCT, "Attributes": ["Long Lasting!"]}
    reward, parts = compute_reward(
        product, {}, 10.0, goal(attributes=["long lasting", "40h battery", "waterproof"], goal_options=[])
    )
    assert parts["r_att"] == pytest.approx(2 / 3) and parts["r_option"] is None
    assert reward == pytest.approx((2 + 0 + 1) / (3 + 0 + 1))
    assert token_set_ratio("long lasting", "long-lasting") == 100
    assert token_set_ratio("noise cancelling", "long lasting") < 85


def test_reward_options_with_colour_normalization():
    assert normalize_color("navy blue stripes") == "navy blue" and normalize_color("large") == "large"
    chosen = {"color": "Navy Blue Stripes", "size": "x-large"}
    _, parts = compute_reward(PRODUCT, chosen, 10.0, goal(goal_options={"color": "navy blue", "size": "xx-large"}))
    assert parts["r_option"] == 1.0  # colour normalized; "x large" vs "xx large" has token set ratio 93
    _, parts = compute_reward(PRODUCT, chosen, 10.0, goal(goal_options=["light blue", "small"]))
    assert parts["r_option"] == 0.0  # a human goal's option list; neither matches


def test_reward_price():
    _, parts = compute_reward(PRODUCT, {}, 50.0, goal())
    assert parts["r_price"] is True
    reward, parts = compute_reward(PRODUCT, {"color": "black", "size": "large"}, 50.01, goal())
    assert parts["r_price"] is False and reward == pytest.approx(4 / 5)


@pytest.mark.parametrize(
    ("purchased", "goal_changes", "expected"),
    [
        ({}, {}, 1.0),  # same nouns
        ({"query": "x", "product_category": "A › B › C", "name_nouns": ["zed"]}, {}, 1.0),  # title 0.5 > 0.2
        (
            {"product_category": "A › B"},
            {"name_nouns": ["headphones", "a", "b", "c", "d", "e"]},
            1.0,
        ),  # query
        (
            {"query": "x"},
            {"name_nouns": ["headphones", "a", "b", "c", "d", "e"]},
            1.0,
        ),  # category: 3 levels shared
        (
            {"query": "x", "product_category": "Electronics › Other"},
            {"name_nouns": ["headphones", "a", "b", "c", "d", "e"]},
            0.5,
        ),  # 1/6 <= 0.2, nothing else matches
        (
            {"query": "x", "product_category": "Electronics › Other"},
            {"name_nouns": ["headphones"] + list("abcdefghijklmnopqrstu")},
            0.1,
        ),  # 1/22 < 0.1
        ({"name_nouns": ["mug"]}, {}, 0.0),  # no noun in common: 0 whatever the query
        ({}, {"name_nouns": []}, 1.0),  # goal title without nouns: title score 0.2, query matches
    ],
)
def test_type_reward_branches(purchased, goal_changes, expected):
    r_type, parts = type_reward({**PRODUCT, **purchased}, goal(**goal_changes))
    assert r_type == expected, parts


# ----------------------------------------------------------------------------- search
def test_bm25_matches_a_naive_lucene_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))
    items, instructions = generate_raw(3, 300)
    products = clean_products(items, instructions)
    catalog = Catalog(products, synthetic_goals(products, random.Random(0)), {"kind": "test"})
    engine = SearchEngine(catalog)
    assert engine.built and SearchEngine(catalog).built is False  # cached on disk by catalog hash
    docs = [Counter(engine.analyzer(doc)) for doc in catalog.documents]
    avgdl = sum(sum(d.values()) for d in docs) / len(docs)
    for query in ("wireless noise cancelling earbuds black", "gluten free protein bars", "the of and"):
        terms = engine.analyzer(query)
        scores = []
        for d in docs:
            dl, score = sum(d.values()), 0.0
            for term in terms:
                df = sum(term in other for other in docs)
                if d[term]:
                    idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                    score += idf * d[term] / (d[term] + K1 * (1 - B + B * dl / avgdl))
            scores.append(score)
        expected = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))[:50]
        got = engine.bm25_hits(query)
        assert len(got) == len(expected) <= 50
        assert [round(scores[i], 4) for i in got] == pytest.approx([round(scores[i], 4) for i in expected], abs=1e-3)
    assert engine.bm25_hits("the of and") == []


def test_special_queries(env):
    engine, catalog = env.unwrapped.shop.engine, env.unwrapped.catalog
    rng = random.Random(0)
    assert len(engine.search(["<r>"], rng)) == 50
    hits = engine.search("<a> long lasting".split(" "), rng)
    assert len(hits) == 50 and all("long lasting" in catalog.by_asin[a]["Attributes"] for a in hits)
    assert all(catalog.by_asin[a]["category"] == "food" for a in engine.search(["<c>", "food"], rng))
    assert all(catalog.by_asin[a]["query"] == "bar stools" for a in engine.search("<q> bar stools".split(" "), rng))


# ----------------------------------------------------------------------------- state machine
def test_pages_transitions_and_noops(env):
    obs, info = env.reset(options={"task_id": "fixed_3"})
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] ") and obs.endswith(" [SEP] Search")
    assert info["admissible_actions"][0].startswith("search[")
    obs2, reward, terminated, _, info = env.step("click[buy now]")  # not on this page: a no-op
    assert obs2 == obs and reward == 0.0 and not terminated and not info["action_valid"]
    assert "not clickable" in info["webshop"]["note"]
    obs, _, _, _, info = env.step("search[wireless earbuds]")
    assert info["action_valid"] and "Page 1 (Total results: 50) [SEP] Next > [SEP]" in obs and "< Prev" not in obs
    assert info["webshop"]["num_results"] == 50
    _, _, _, _, info = env.step("search[shoes]")  # no search bar on results
    assert not info["action_valid"] and "no search bar" in info["webshop"]["note"]
    first_page, first_anchor = obs, info["anchor_obs"]
    obs, _, _, _, info = env.step("click[next >]")
    assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >" in obs
    asin = info["admissible_actions"][3][len("click[") : -1]  # back, prev, next, first product
    obs, _, _, _, info = env.step("click[< prev]")
    assert obs == first_page and info["anchor_obs"] == first_anchor
    env.step("click[next >]")
    obs, _, _, _, info = env.step(f"click[{asin.upper()}]")  # case-insensitive
    assert info["webshop"]["page"] == "item" and "[SEP] Rating: N.A. [SEP] Description [SEP] Features" in obs
    product = env.unwrapped.catalog.by_asin[asin.upper()]
    obs, _, _, _, _ = env.step("click[features]")
    assert obs.endswith(" [SEP] ".join(product["BulletPoints"]))
    env.step("click[< prev]")
    obs, _, _, _, info = env.step("click[< prev]")  # item -> the results page it came from
    assert "Page 2 (Total results: 50)" in obs
    _, _, _, _, info = env.step("press[enter]")
    assert not info["action_valid"]
    obs, _, _, _, info = env.step("click[back to search]")
    assert info["webshop"]["page"] == "index" and info["webshop"]["keywords"] == []


def test_anchor_is_the_shopper_state(env):
    """``anchor_obs`` is a key of the state (issue 16): the same state reached again, by another path or after
    a no-op, gives the same anchor; choosing an option (the same page text in text mode) gives another."""
    _, info = env.reset(options={"task_id": "fixed_0"})
    start = info["anchor_obs"]
    assert env.step("click[buy now]")[4]["anchor_obs"] == start  # a no-op: same state, same anchor
    search = info["expert_action"]
    results = env.step(search)[4]
    assert results["anchor_obs"] != start and "page: results" in results["anchor_obs"]
    product = results["expert_action"]  # click[<asin>]
    item = env.step(product)[4]
    assert f"product: {product[len('click[') : -1].upper()}" in item["anchor_obs"]
    assert env.step("click[< prev]")[4]["anchor_obs"] == results["anchor_obs"], "the results page again"
    assert env.step(product)[4]["anchor_obs"] == item["anchor_obs"], "the item page again, at another turn"
    assert env.step("click[description]")[4]["anchor_obs"] != item["anchor_obs"], "a sub-page is another state"
    env.step("click[< prev]")
    chosen = env.step(item["expert_action"])  # click[olive]: the goal's option
    assert chosen[4]["anchor_obs"] != item["anchor_obs"] and "options: color=olive" in chosen[4]["anchor_obs"]
    assert env.step("click[back to search]")[4]["anchor_obs"] == start, "the search page again: the start state"


def test_oracle_reaches_reward_one_on_every_test_goal(env):
    base = env.unwrapped
    for task_id in base.task_ids:
        obs, info = env.reset(options={"task_id": task_id})
        for _ in range(base.max_turns):
            obs, reward, terminated, truncated, info = env.step(info["expert_action"])
            assert info["action_valid"], (task_id, info["webshop"]["note"])
            if terminated or truncated:
                break
        assert terminated and reward == 1.0 and info["won"] and info["score"] == 1.0, (
            task_id,
            info["webshop"],
        )


def test_buying_the_wrong_product_scores_its_parts(env):
    obs, info = env.reset(options={"task_id": "fixed_10"})
    target = info["webshop"]["goal"]["asin"]
    env.step(info["admissible_actions"][0])
    _, _, _, _, info = env.step("click[next >]")
    other = next(a for a in info["admissible_actions"] if a.startswith("click[b0") and a != f"click[{target.lower()}]")
    env.step(other)
    _, reward, terminated, _, info = env.step("click[buy now]")
    parts = info["webshop"]["reward_parts"]
    assert terminated and reward < 1.0 and not info["won"] and parts["r_option"] in (0.0, None)
    assert info["admissible_actions"] == [] and info["expert_action"] is None


def test_react_observation_mode():
    env = gym.make(ENV_ID, split="test", observation_mode="react")
    obs, info = env.reset(options={"task_id": "fixed_0"})
    assert obs.startswith("WebShop \nInstruction:") and obs.endswith("[Search]")
    obs, _, _, _, info = env.step(info["expert_action"])
    assert obs.startswith("[Back to Search] \nPage 1 (Total results: 50)") and "Next >" not in obs
    assert obs.count("\n[B0") == 3 and len([a for a in info["admissible_actions"] if a.startswith("click[b0")]) == 3
    obs, _, _, _, info = env.step("click[next >]")
    assert obs == "Invalid action!" and not info["action_valid"]
    obs, _, _, _, info = env.step(info["expert_action"])
    value = info["expert_action"][len("click[") : -1]
    obs, _, _, _, info = env.step(info["expert_action"])
    assert obs == f"You have clicked {value}."
    page = react_page(env.unwrapped.shop, env.unwrapped._state, "")
    assert f"[[{value}]]" in page
    while info["expert_action"]:
        obs, reward, terminated, _, info = env.step(info["expert_action"])
    assert terminated and obs == "Your score (min 0.0, max 1.0): 1.0"
    env.close()


def test_random_agent_runs_with_seeded_determinism(env):
    from agentgym.agents import RandomAgent

    def play(seed):
        agent, rewards = RandomAgent(seed), []
        for episode in range(10):
            obs, info = env.reset(seed=episode)
            for _ in range(15):
                obs, reward, terminated, truncated, info = env.step(agent.act(obs, info, episode_id=str(episode)))
                if terminated or truncated:
                    break
            rewards.append(reward)
        return rewards

    rewards = play(0)
    assert rewards == play(0) and all(0.0 <= r <= 1.0 for r in rewards)


# ----------------------------------------------------------------------------- users' data
def write_upstream_files(root, human=True):
    items = [
        {
            "asin": "B000000001",
            "name": "Acme Black Wireless Headphones",
            "category": "electronics",
            "query": "Headphones",
            "product_category": "Electronics › Audio › Headphones",
            "full_description": "Great sound.",
            "small_description": "40h battery",
            "pricing": "$19.99$29.99",
            "images": ["http://example.invalid/a.jpg"],
            "customization_options": {
                "Color": [{"value": "Black", "image": None}, {"value": "White/Grey", "image": None}]
            },
        },
        {
            "asin": "B000000002",
            "name": "Bolt Running Shoes",
            "category": "fashion",
            "query": "shoes",
            "product_category": "Shoes › Running",
            "full_description": "Light.",
            "small_description": ["non slip"],
            "customization_options": None,
        },
        {"asin": "nan", "name": "dropped"},
        {"asin": "B000000001", "name": "duplicate, dropped"},
        {"asin": "B0000000012345", "name": "ASIN too long, dropped"},
    ]
    ins = {
        "B000000001": {
            "attributes": ["wireless", "long battery life"],
            "instruction": "i need wireless headphones",
            "instruction_attributes": ["wireless"],
        },
        "B000000002": {
            "attributes": ["non slip"],
            "instruction": "i want non slip shoes",
            "instruction_attributes": ["non slip"],
        },
    }
    (root / "items_shuffle_1000.json").write_text(json.dumps(items))
    (root / "items_ins_v2_1000.json").write_text(json.dumps(ins))
    if human:
        (root / "items_human_ins.json").write_text(
            json.dumps(
                {
                    "B000000001": [
                        {
                            "instruction": "i want white wireless headphones.",
                            "instruction_attributes": ["wireless"],
                            "instruction_options": ["white"],
                        },
                        {"instruction": "skipped: no attributes", "instruction_attributes": []},
                    ],
                    "B000000002": [
                        {
                            "instruction": "i want non slip running shoes",
                            "instruction_attributes": ["non slip"],
                            "instruction_options": [],
                        }
                    ],
                }
            )
        )


def test_data_dir_loads_upstream_files_with_human_goals(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    write_upstream_files(data)
    env = gym.make(ENV_ID, split="test", data_dir=str(data))
    catalog = env.unwrapped.catalog
    assert [p["asin"] for p in catalog.products] == ["B000000001", "B000000002"]
    headphones = catalog.by_asin["B000000001"]
    assert headphones["options"] == {"color": ["black", "white | grey"]} and headphones["BulletPoints"] == [
        "40h battery"
    ]
    assert headphones["price_tag"] == "$19.99 to $29.99" and 19.99 <= headphones["Price"] <= 29.99
    assert catalog.by_asin["B000000002"]["price_tag"] == "$100.0" and catalog.by_asin["B000000002"]["Attributes"] == [
        "non slip"
    ]
    assert catalog.source["goals"] == "human" and len(env.unwrapped.task_ids) == 2
    assert {g["instruction_text"].split(",")[0] for g in catalog.goals} == {
        "i want white wireless headphones",
        "i want non slip running shoes",
    }
    for task_id in env.unwrapped.task_ids:  # the oracle maps human option text onto the product's values
        obs, info = env.reset(options={"task_id": task_id})
        while info["expert_action"]:
            obs, reward, terminated, _, info = env.step(info["expert_action"])
        assert reward == 1.0, info["webshop"]
    env.close()
    env = gym.make(ENV_ID, split="test", data_dir=str(data), human_goals=False)
    assert env.unwrapped.catalog.source["goals"] == "synthetic" and len(env.unwrapped.task_ids) == 3
    env.close()
    with pytest.raises(InvalidArgumentError, match="split 'train' starts at goal 1500"):
        gym.make(ENV_ID, split="train", data_dir=str(data))


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "items_shuffle_1000.json",
            '[{"asin": "B1", "name": "x"}, {"asin": ',
            r"items_shuffle_1000.json: not valid JSON \(line 1",
        ),
        (
            "items_shuffle_1000.json",
            '[{"asin": "B1"}, ["not", "an", "object"]]',
            r"items_shuffle_1000.json: record #1: expected an object",
        ),
        (
            "items_shuffle_1000.json",
            '[{"asin": "B1", "customization_options": {"color": [{"image": null}]}}]',
            r"items_shuffle_1000.json: record #0 \(asin 'B1'\): option 'color' has an entry without a string 'value'",
        ),
        (
            "items_shuffle_1000.json",
            '[{"asin": "B1", "small_description": [1, 2]}]',
            r"record #0 \(asin 'B1'\).*small_description",
        ),
        (
            "items_ins_v2_1000.json",
            '{"B000000001": {"attributes": "wireless"}}',
            r"items_ins_v2_1000.json: record asin 'B000000001'",
        ),
        (
            "items_human_ins.json",
            '{"B000000001": [{"instruction_attributes": ["x"]}]}',
            r"items_human_ins.json: record asin 'B000000001' entry 0",
        ),
        (  # instructions under another key: parses, but gives no goal
            "items_human_ins.json",
            '{"B000000001": [{"instruction": "i want x", "attributes": ["wireless"]}]}',
            r"items_human_ins.json: no usable goals: 1 of its ASINs.*'instruction_attributes'",
        ),
        (  # ASINs of another catalog
            "items_human_ins.json",
            '{"B999999999": [{"instruction": "i want x", "instruction_attributes": ["wireless"]}]}',
            r"items_human_ins.json: no usable goals: 0 of its ASINs are products of items_shuffle_1000.json",
        ),
    ],
)
def test_malformed_files_name_file_and_record(tmp_path, file, content, message):
    write_upstream_files(tmp_path)
    (tmp_path / file).write_text(content)
    with pytest.raises(TaskFileError, match=message):
        gym.make(ENV_ID, split="test", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- HTML mode
def test_html_mode_serves_upstream_urls_and_stops_on_close():
    env = gym.make(ENV_ID, split="test", observation_mode="html")
    obs, info = env.reset(options={"task_id": "fixed_5"})
    base = env.unwrapped.server_url
    assert base.startswith("http://127.0.0.1:") and info["webshop"]["url"] == f"{base}/fixed_5"
    assert obs.startswith("<!doctype html>") and 'name="search_query"' in obs and "<script" not in obs
    assert "http" not in obs.split("<body>")[1]  # no external resources
    with urllib.request.urlopen(info["webshop"]["url"]) as page:
        assert page.read().decode() == obs
    obs, _, _, _, info = env.step(info["expert_action"])
    with urllib.request.urlopen(info["webshop"]["url"]) as page:
        assert page.read().decode() == obs and "/search_results/fixed_5/" in info["webshop"]["url"]
    request = urllib.request.Request(f"{base}/fixed_5", data=b"search_query=Red+Mug", method="POST")
    with urllib.request.urlopen(request) as page:  # redirected to the results
        assert page.url.endswith("/search_results/fixed_5/red%20mug/1") and "Total results" in page.read().decode()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/item_page/fixed_5/B0NOTHERE/x/1/%7B%7D")
    assert missing.value.code == 404
    legacy = urllib.parse.quote(str(["red", "mug"]), safe="")  # upstream's list form of the keywords
    with urllib.request.urlopen(f"{base}/search_results/fixed_5/{legacy}/2") as page:
        assert "Page 2 (Total results" in page.read().decode()
    while info["expert_action"]:
        obs, reward, _, _, info = env.step(info["expert_action"])
    assert f'<p id="reward">{reward}</p>' in obs and info["webshop"]["url"].startswith(f"{base}/done/fixed_5/")
    port = int(base.rsplit(":", 1)[1])
    env.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_show_attrs_adds_the_attributes_sub_page():
    env = gym.make(ENV_ID, split="test", show_attrs=True)
    _, info = env.reset(options={"task_id": "fixed_1"})
    while info["webshop"]["page"] != "item":
        obs, _, _, _, info = env.step(info["expert_action"])
    assert "[SEP] Reviews [SEP] Attributes [SEP] Buy Now" in obs
    obs, _, _, _, info = env.step("click[attributes]")
    attributes = env.unwrapped.catalog.by_asin[info["webshop"]["asin"]]["Attributes"]
    assert info["action_valid"] and obs.endswith(" [SEP] ".join(attributes))
    env.close()
