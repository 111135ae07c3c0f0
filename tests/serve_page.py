#!/usr/bin/env python3
"""unmask serve's page (GET /) in a headless Chromium driven by selenium: it
loads, takes an API key, streams a completion while drawing the canvas, then
a chat turn that it keeps; a screenshot of the canvas with committed tokens
is saved (and one of the whole page beside it, NAME-page.png).

    python3 tests/serve_page.py [UNMASK_BIN] [SCREENSHOT.png]

(.ci/run runs it with Debian's chromium and chromium-driver and PyPI's
selenium in a venv; defaults: build/unmask, build/serve-page.png.)"""
import re
import signal
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/unmask"
SHOT = sys.argv[2] if len(sys.argv) > 2 else "build/serve-page.png"
KEY = "page-key"


def start_server():
    log = tempfile.NamedTemporaryFile(prefix="unmask-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([BIN, "serve", "-m", "models/stories", "--port", "0", "--api-key", KEY],
                            stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(3000):
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log.name).read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            sys.exit("unmask serve exited: " + open(log.name).read())
        time.sleep(0.01)
    sys.exit("unmask serve did not start")


def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))


def run_once(driver):
    """Clicks Generate and waits for the answer; returns the canvas's cells."""
    driver.find_element(By.ID, "go").click()
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_element(By.ID, "go").is_enabled() and d.find_element(By.ID, "stats").text)
    error = driver.find_element(By.ID, "error").text
    assert not error, "the page says: " + error
    return driver.find_elements(By.CSS_SELECTOR, "#canvas span")


def main():
    proc, port = start_server()
    driver = browser()
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        key = driver.find_element(By.ID, "key")
        key.send_keys(KEY)
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        for field, value in (("max_tokens", "64"), ("steps", "32"), ("seed", "3")):
            box = driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        Select(driver.find_element(By.ID, "decoder")).select_by_visible_text("topk")  # steps / blocks per step
        cells = run_once(driver)
        assert len(cells) == 64, len(cells)
        committed = [c for c in cells if c.get_attribute("class") in ("new", "old")]
        assert committed, "the canvas shows no committed token"
        answer = driver.find_element(By.ID, "answer").text
        assert answer.strip(), "no answer"
        assert "NFE 32" in driver.find_element(By.ID, "stats").text, driver.find_element(By.ID, "stats").text
        driver.find_element(By.ID, "canvas").screenshot(SHOT)
        driver.save_screenshot(SHOT.replace(".png", "-page.png"))

        Select(driver.find_element(By.ID, "mode")).select_by_value("chat")
        prompt = driver.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("Tell me about a dog.")
        run_once(driver)
        turns = driver.find_elements(By.CSS_SELECTOR, "#history .turn")
        assert len(turns) == 2, len(turns)  # the conversation is kept
        print(f"serve_page: completion ({len(committed)} tokens drawn) and a chat turn: ok; screenshot {SHOT}")
    finally:
        driver.quit()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    if rc != 0:
        sys.exit(f"unmask serve exited {rc} after SIGTERM")


if __name__ == "__main__":
    main()
