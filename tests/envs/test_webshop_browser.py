"""WebShop's HTML mode driven end to end in headless Chromium (Debian's chromium + chromium-driver)."""

import gymnasium as gym
import pytest

import agentgym  # noqa: F401
from tests.browser import CHROMEDRIVER, CHROMIUM, MISSING, headless_chromium

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    with headless_chromium(
        tmp_path / "profile", monkeypatch, extra_flags=("--disable-quic",), require_clean_exit=True
    ) as driver:
        yield driver


def follow(browser, element, route):
    """Click a link or button and wait until the browser has loaded the next page of ``route``."""
    from selenium.webdriver.support.ui import WebDriverWait

    before = browser.current_url
    element.click()
    WebDriverWait(browser, 20).until(
        lambda d: (
            d.current_url != before
            and f"/{route}/" in d.current_url
            and d.execute_script("return document.readyState") == "complete"
        )
    )


def test_shop_in_a_browser_search_open_choose_buy_and_read_the_score(browser):
    from selenium.webdriver.common.by import By

    browser.implicitly_wait(10)
    env = gym.make("agentgym/WebShop-v0", split="test", observation_mode="html")
    try:
        _, info = env.reset(options={"task_id": "fixed_2"})
        goal = info["webshop"]["goal"]
        product = env.unwrapped.catalog.by_asin[goal["asin"]]
        browser.get(info["webshop"]["url"])
        assert goal["asin"] not in browser.page_source
        assert browser.find_element(By.ID, "instruction-text").text == info["goal"]
        browser.find_element(By.NAME, "search_query").send_keys(product["Title"])
        follow(browser, browser.find_element(By.ID, "search-button"), "search_results")
        assert "Page 1 (Total results: 50)" in browser.find_element(By.TAG_NAME, "body").text
        links = {link.text: link for link in browser.find_elements(By.CLASS_NAME, "product-link")}
        assert len(links) == 10
        follow(browser, links[goal["asin"]], "item_page")
        assert product["Title"] in browser.find_element(By.TAG_NAME, "body").text
        for name, value in goal["goal_options"].items():
            option = browser.find_element(By.CSS_SELECTOR, f'a.option[name="{name}"][value="{value}"]')
            follow(browser, option, "item_page")
            chosen = browser.find_element(By.CSS_SELECTOR, f'a.option.selected[name="{name}"]')
            assert chosen.get_attribute("value") == value
        follow(browser, browser.find_element(By.ID, "btn-features"), "item_sub_page")
        assert product["BulletPoints"][0] in browser.find_element(By.TAG_NAME, "body").text
        follow(browser, browser.find_element(By.ID, "btn-prev"), "item_page")
        follow(browser, browser.find_element(By.ID, "btn-buy-now"), "done")
        assert "/done/fixed_2/" in browser.current_url
        assert float(browser.find_element(By.ID, "reward").text) == 1.0
        # a wrong purchase reads a lower score from the page
        browser.get(f"{env.unwrapped.server_url}/fixed_2")
        browser.find_element(By.NAME, "search_query").send_keys("dark chocolate")
        follow(browser, browser.find_element(By.ID, "search-button"), "search_results")
        follow(browser, browser.find_elements(By.CLASS_NAME, "product-link")[0], "item_page")
        follow(browser, browser.find_element(By.ID, "btn-buy-now"), "done")
        assert float(browser.find_element(By.ID, "reward").text) < 1.0
    finally:
        env.close()
