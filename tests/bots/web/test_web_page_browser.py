"""The chat page in a real browser: Debian's Chromium, headless, driven by Playwright."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.bots.web.conftest import LiveServer, ServerFactory
from tests.fakes.engines import FixedTextEngine, RecordingEngine

CHROMIUM = "/usr/bin/chromium"
# Without Debian's Chromium a developer's run skips these; CI installs it, and there a missing
# browser is a failure rather than a silent skip.
_NO_BROWSER = not Path(CHROMIUM).exists() and not os.environ.get("CI")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(_NO_BROWSER, reason="needs Debian's chromium: apt-get install chromium"),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Set to docs/ to refresh the README's screenshots; by default they go to the test's tmp folder.
SCREENSHOT_DIR = os.environ.get("VISIONBOT_SCREENSHOT_DIR")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser():
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


def photo(path: Path, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A real, camera-sized JPEG (larger than the pixel budget, so the page must shrink it)."""
    image = Image.new("RGB", size)
    pixels = image.load()
    for x in range(0, size[0], 4):
        for y in range(0, size[1], 4):
            colour = (x * 255 // size[0], y * 255 // size[1], 160)
            for dx in range(4):
                for dy in range(4):
                    pixels[x + dx, y + dy] = colour
    image.save(path, format="JPEG", quality=90)
    return path


@pytest.fixture
def page_errors() -> Iterator[list[str]]:
    """Script errors and console errors of every page a test opens; none are allowed."""
    errors: list[str] = []
    yield errors
    assert errors == []


async def open_page(
    browser: Browser, server: LiveServer, errors: list[str], **context: object
) -> Page:
    page = await (await browser.new_context(**context)).new_page()
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))

    def console(message: ConsoleMessage) -> None:
        # Refused requests are logged by the browser too; tests check how the page shows them.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", console)
    await page.goto(server.base + "/")
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)
    return page


async def ask(page: Page, question: str, answers_before: int) -> str:
    await page.locator("#question").fill(question)
    await page.locator("#question").press("Enter")
    done = page.locator(".message.assistant.done")
    await expect(done).to_have_count(answers_before + 1, timeout=60_000)
    return await done.nth(answers_before).inner_text()


def squash(text: str) -> str:
    return " ".join(text.split())


async def test_upload_ask_follow_up_reload(
    live_server: ServerFactory, browser: Browser, tmp_path: Path, page_errors: list[str]
):
    server = live_server()
    engine = server.service.engine
    assert isinstance(engine, RecordingEngine)
    page = await open_page(browser, server, page_errors)
    sent: list[dict] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/chat/stream") else None,
    )

    await page.locator("#file").set_input_files(photo(tmp_path / "photo.jpg"))
    await expect(page.locator("#attachments img")).to_have_count(1)
    first = await ask(page, "What is in this photo?", 0)
    await ask(page, "And what colour is it?", 1)

    # The browser shrank the photo to the server's pixel budget before sending it.
    header, _, data = sent[0]["images"][0].partition(",")
    assert header == "data:image/jpeg;base64"
    width, height = Image.open(io.BytesIO(base64.b64decode(data))).size
    budget = server.settings.images.max_pixels
    assert width * height <= budget and width * height > budget * 0.95
    assert abs(width / height - 4 / 3) < 0.02
    session = await page.evaluate("localStorage.getItem('visionbot.session')")
    assert sent[0]["session"] == "new"
    assert sent[1]["images"] == [] and sent[1]["session"] == session

    # The follow-up reached the model with the first photo, question and answer.
    follow_up = engine.prompts[1]
    assert [t.role for t in follow_up] == ["user", "assistant", "user"]
    assert follow_up[0].text == "What is in this photo?" and len(follow_up[0].images) == 1
    assert squash(follow_up[1].text or "(no answer)") == squash(first)

    # A reload shows the whole conversation again, photo included.
    await page.reload()
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)
    messages = page.locator(".message")
    await expect(messages).to_have_count(4)
    assert await messages.nth(0).locator("img").count() == 1
    assert squash(await messages.nth(2).inner_text()) == "And what colour is it?"

    # "New conversation" starts afresh: nothing shown, and the next question has no history.
    await page.locator("#new-chat").click()
    await expect(messages).to_have_count(0)
    await ask(page, "Fresh start?", 0)
    assert [t.text for t in engine.prompts[2]] == ["Fresh start?"]


HOSTILE = (
    "Here is the **answer**:\n\n"
    "<script>window.__pwned = 'script'</script>\n"
    "<img src=x onerror=\"window.__pwned = 'img'\">\n"
    "- `<b>code</b>`\n"
    "- [link](javascript:window.__pwned='link')"
)


async def test_markup_in_answers_and_questions_shows_as_text(
    live_server: ServerFactory, browser: Browser, page_errors: list[str]
):
    server = live_server(engine=FixedTextEngine(HOSTILE, piece_chars=7))
    page = await open_page(browser, server, page_errors)
    await ask(page, "<img src=y onerror=\"window.__pwned='question'\"> what?", 0)
    await page.reload()  # the history is rendered by another code path
    await expect(page.locator(".message")).to_have_count(2)
    await ask(page, "again", 1)

    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("script:not([src])").count() == 0
    assert await page.locator(".message img").count() == 0
    answer = page.locator(".message.assistant").last
    text = await answer.inner_text()
    assert "<script>window.__pwned = 'script'</script>" in text
    assert "<img src=x onerror=" in text
    assert await answer.locator("strong").inner_text() == "answer"  # Markdown still works
    assert await answer.locator("code").inner_text() == "<b>code</b>"
    assert await answer.locator("a").count() == 0
    question = await page.locator(".message.user").first.inner_text()
    assert question.startswith("<img src=y")


async def test_paste_drop_and_readable_errors(
    live_server: ServerFactory, browser: Browser, page_errors: list[str]
):
    server = live_server()
    page = await open_page(browser, server, page_errors)
    make_file = """async ([name, type]) => {
        const canvas = document.createElement('canvas');
        canvas.width = 40; canvas.height = 30;
        canvas.getContext('2d').fillRect(0, 0, 20, 20);
        const blob = await new Promise((done) => canvas.toBlob(done, type));
        const data = new DataTransfer();
        data.items.add(new File([blob], name, { type }));
        return data;
    }"""
    pasted = await page.evaluate_handle(make_file, ["pasted.png", "image/png"])
    await page.evaluate(
        "(d) => document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: d}))", pasted
    )
    await expect(page.locator("#attachments img")).to_have_count(1)
    dropped = await page.evaluate_handle(make_file, ["dropped.jpg", "image/jpeg"])
    await page.dispatch_event("body", "drop", {"dataTransfer": dropped})
    await expect(page.locator("#attachments img")).to_have_count(2)
    await ask(page, "Two pictures?", 0)
    assert len(server.service.engine.prompts[0][-1].images) == 2

    # A file that is not an image is refused in the page, with a sentence saying so.
    text_file = await page.evaluate_handle(
        "() => { const d = new DataTransfer(); "
        "d.items.add(new File(['hello'], 'notes.txt', {type: 'text/plain'})); return d; }"
    )
    await page.dispatch_event("body", "drop", {"dataTransfer": text_file})
    await expect(page.locator("#notice")).to_contain_text("is not an image")

    # A conversation the server does not know: a readable error, then the next question works.
    await page.evaluate("localStorage.setItem('visionbot.session', 'X'.repeat(32))")
    await page.locator("#question").fill("Still there?")
    await page.locator("#question").press("Enter")
    await expect(page.locator(".message.error")).to_contain_text("Unknown session")
    await ask(page, "Try again", 1)


SCRIPTED_ANSWERS = (
    "It is a **test card**: a smooth gradient from dark blue in the top-left corner to pink and "
    "yellow on the right.\n\n- no people or text\n- evenly lit, no shadows",
    "Mostly **blue** in the top-left, turning pink, then yellow on the right.",
)


async def test_screenshots_of_a_conversation(
    live_server: ServerFactory, browser: Browser, tmp_path: Path, page_errors: list[str]
):
    # Scripted answers (the tiny test model writes gibberish); the page is what is pictured.
    engine = FixedTextEngine(SCRIPTED_ANSWERS[0], piece_chars=12)
    server = live_server(engine=engine, model={"id": "Qwen/Qwen3-VL-2B-Instruct"})
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    folder.mkdir(exist_ok=True)
    for name, context in (
        ("web-page.png", {"viewport": {"width": 1000, "height": 760}}),
        ("web-page-phone.png", {"viewport": {"width": 390, "height": 760}, "is_mobile": True}),
    ):
        page = await open_page(browser, server, page_errors, **context)
        await page.locator("#file").set_input_files(photo(tmp_path / "card.jpg", (800, 600)))
        engine.text = SCRIPTED_ANSWERS[0]
        await ask(page, "What is in this picture?", 0)
        engine.text = SCRIPTED_ANSWERS[1]
        await ask(page, "Which colour dominates?", 1)
        await page.screenshot(path=str(folder / name))
        await page.context.close()
        with Image.open(folder / name) as shot:
            assert shot.size == (context["viewport"]["width"], context["viewport"]["height"])


async def test_page_asks_for_the_api_key_when_the_server_needs_one(
    live_server: ServerFactory, browser: Browser, page_errors: list[str]
):
    server = live_server(web={"api_keys": ["page-key"]})
    page = await open_page(browser, server, page_errors)
    await expect(page.locator("#key-row")).to_be_visible()
    await page.locator("#question").fill("Without a key?")
    await page.locator("#question").press("Enter")
    await expect(page.locator(".message.error")).to_contain_text("API key")

    await page.locator("#api-key").fill("page-key")
    await page.locator("#api-key").press("Enter")
    await ask(page, "With the key?", 0)
    await page.reload()  # the key is remembered, so the history loads
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)
    await expect(page.locator(".message.user")).to_have_count(1)
    assert await page.locator(".message.user").inner_text() == "With the key?"
