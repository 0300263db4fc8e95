"""The static leaderboard site, opened in headless Chromium (Debian's chromium + chromium-driver)."""

import io
import json

import pytest

from agentgym.agents import RandomAgent
from agentgym.cli import main as cli_main
from agentgym.evaluation import evaluate
from tests.browser import CHROMEDRIVER, CHROMIUM, MISSING, headless_chromium
from tests.results_helpers import ENV_ID, small_db

LONG_NAME = "llm:" + "a-very-long-model-name-" * 4 + "@step-000123"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site built by the command from a small real database (3 agents, one with a long name) and two runs."""
    root = tmp_path_factory.mktemp("site")
    db = small_db(root / "r.sqlite", episodes=3)
    long_agent = RandomAgent(seed=1)
    long_agent.name = LONG_NAME
    evaluate(ENV_ID, long_agent, split="test", episodes=3, seed=0, max_turns=50, db=db, num_workers=1, progress=False)
    run = root / "runs" / "demo_llm"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": step, "charts/success": step / 4, "losses/loss": 1 / step}) + "\n" for step in (1, 2, 3)
        )
    )
    (root / "runs" / "drrn").mkdir()
    (root / "runs" / "drrn" / "metrics.csv").write_text("step,eval/train_success\n0,0.1\n500,0.8\n")
    assert cli_main(["leaderboard", "--db", str(db), "--html", str(root / "out"), "--runs", str(root / "runs")]) == 0
    return root / "out" / "index.html"


def test_the_page_is_self_contained(site):
    page = site.read_text()
    for reference in ("<link", "src=", "@import", "url(", "fetch(", "XMLHttpRequest"):
        assert reference not in page, reference
    assert (
        page.count("<script") == 2
        and "</script>" not in page.split('type="application/json">')[1].split("</script>")[0]
    )


@pytest.fixture
def browser(tmp_path, monkeypatch):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    with headless_chromium(
        tmp_path / "profile",
        monkeypatch,
        extra_flags=("--window-size=1280,1600",),
        capabilities={"goog:loggingPrefs": {"browser": "ALL"}},
    ) as driver:
        yield driver


def test_site_in_a_browser_tables_intervals_heat_map_curves_and_a_turn(site, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(site.as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # no network

    board = browser.find_element(By.CSS_SELECTOR, "table.board")
    agents = [td.text for td in board.find_elements(By.CSS_SELECTOR, "td.agent")]
    assert agents[0] == "expert" and set(agents) == {"expert", "random", LONG_NAME}
    assert len(board.find_elements(By.CSS_SELECTOR, "svg.errorbar line.ci")) == 3  # an error bar per row
    assert board.find_elements(By.CSS_SELECTOR, "td.ci")[0].text.startswith("[")
    section = browser.find_element(By.CSS_SELECTOR, "section.protocol-section")
    assert board.size["width"] <= section.size["width"]  # the long name wraps inside its column
    # sorting: by agent name, then back
    board.find_element(By.CSS_SELECTOR, "th.agent").click()
    assert [td.text for td in board.find_elements(By.CSS_SELECTOR, "td.agent")] == sorted(agents)

    heat = browser.find_element(By.CSS_SELECTOR, "table.heat")
    assert {td.text for td in heat.find_elements(By.CSS_SELECTOR, "td.type")} == {
        "custom_easy",
        "custom_medium",
        "treasure_hunter",
    }
    assert len(browser.find_elements(By.CSS_SELECTOR, "#runs svg.curve polyline")) == 2

    select = Select(browser.find_element(By.ID, "trajectory-select"))
    select.select_by_index(1)
    turns = browser.find_elements(By.CSS_SELECTOR, "#trajectory-view .turn")
    assert len(turns) >= 2 and turns[1].text.startswith("Turn 1 · action ")
    assert "reward" in turns[1].text and turns[1].find_element(By.CSS_SELECTOR, "pre.observation").text

    png = browser.get_screenshot_as_png()
    (tmp_path / "site.png").write_bytes(png)
    image = pytest.importorskip("PIL.Image").open(io.BytesIO(png)).convert("RGB")
    assert len(image.resize((128, 160)).getcolors(maxcolors=1 << 16)) > 20  # not a blank page
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
