"""The chat page at / in a real headless browser (Debian's chromium and chromedriver, driven by selenium):
type a message, watch the streamed reply appear, and keep the conversation for the next turn."""
from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def greedy(server, messages) -> str:
    """The server's reply at temperature 0, asked directly as the page will ask it: twice, so that the second
    answer, like the page's, comes from a slot holding all but the last prompt token (a prefill of another
    length can round differently in the quantized matmuls and flip a near tie)."""
    body = json.dumps({"messages": messages, "temperature": 0, "max_tokens": 24}).encode()
    for _ in range(2):
        with urllib.request.urlopen(urllib.request.Request(server.api + "/chat/completions", data=body)) as r:
            reply = json.loads(r.read())["choices"][0]["message"]["content"]
    return reply


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="llmc-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_page_streams_a_reply_and_keeps_the_conversation(browser, smollm2_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(smollm2_server.url + "/")
    assert browser.title == "llmc chat"
    # record every change of the reply's text, to see it grow while it streams
    browser.execute_script("""
        window.seen = [];
        new MutationObserver(() => {
          const r = document.querySelector('.assistant:last-child');
          if (r) window.seen.push(r.textContent);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});""")
    wait = WebDriverWait(browser, 120)
    for field, value in (("temperature", "0"), ("max_tokens", "24")):     # greedy, so the reply is known
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)

    def say(text: str) -> str:
        n = len(browser.find_elements(By.CSS_SELECTOR, ".assistant"))
        box = browser.find_element(By.ID, "input")
        box.send_keys(text)
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".assistant[data-done]")) > n)
        reply = browser.find_elements(By.CSS_SELECTOR, ".assistant")[-1]
        assert reply.get_attribute("data-done") == "true", reply.text
        return reply.text

    question = "What is the capital of France?"
    want = greedy(smollm2_server, [{"role": "user", "content": question}])
    first = say(question)
    assert first == want
    growth = browser.execute_script("return window.seen")
    assert len(set(growth)) >= 3 and growth[-1] == first   # it arrived in pieces, then the whole
    want = greedy(smollm2_server, [{"role": "user", "content": question}, {"role": "assistant", "content": first},
                                   {"role": "user", "content": "And of Germany?"}])
    second = say("And of Germany?")
    assert second == want
    assert browser.find_element(By.ID, "model").text == "SmolLM2-135M-Instruct.Q4_1.gguf"
