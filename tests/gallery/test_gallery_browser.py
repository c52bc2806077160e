"""The public gallery in a real browser: headless Chromium driven by Playwright.

One server of the module's own holds three public repositories, so the list is predictable:

- `gallery/widget`: every catalog field (logo, badges, Markdown about and usage text) and
  two tagged images pushed with skopeo;
- `gallery/sprocket`: a description only, no logo, no image;
- `gallery/xss-trap`: catalog text that would run script if it were not escaped.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import EcrdServer
from tests.gallery.conftest import TIMEOUT_MS
from tests.integration.conftest import POLICY, REGISTRIES_CONF, Skopeo
from tests.oci_layouts import single_image

WIDGET = "gallery/widget"
SPROCKET = "gallery/sprocket"
XSS = "gallery/xss-trap"
WIDGET_TAGS = ("v1", "release-candidate-2024-build-0000000001")
LONG_URL = "https://example.com/docs/" + "a-rather-long-path-segment-" * 4 + "end"
LONG_CODE = "widget --configuration-file=/etc/widget/" + "nested/" * 8 + "widget.toml"
WIDGET_ABOUT = f"""# Widget heading

Widget is **bold** and *emphasised*.

- first item
- second item
- third item

See [the docs](https://example.com/docs) and run `widget --help`.

Long reference: {LONG_URL} and `{LONG_CODE}`.
"""
WIDGET_USAGE = """## Pulling

Run **it** like this:

```sh
docker run widget
```

1. pull the image
2. run it
"""
SCRIPT_TAG = "<script>window.__xss=1</script>"
IMG_TAG = '<img src=x onerror="window.__xss=2">'
JS_LINK = "[x](javascript:window.__xss=3)"
XSS_TEXT = f"{SCRIPT_TAG}\n\n{IMG_TAG}\n\n{JS_LINK}\n"
XSS_DESCRIPTION = "<script>window.__xss=4</script> trap"
# The page's own <h1> (the about text may hold headings of its own).
TITLE = "h1:not(#about *, #usage *)"
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of one colour, built by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x20\x80\xe0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


LOGO = tiny_png()


@dataclass(frozen=True)
class Gallery:
    server: EcrdServer
    alias: str
    uris: dict[str, str]  # repository name -> repositoryUri (<public host>/<alias>/<name>)
    tags: dict[str, dict[str, Any]]  # widget tag -> its imageDetail

    def path(self, name: str) -> str:
        return f"{self.alias}/{name}"

    def url(self, suffix: str = "") -> str:
        return f"{self.server.url}/gallery{suffix}"

    def page_url(self, name: str) -> str:
        return self.url(f"/{self.path(name)}")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gallery]:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (scripts/install-test-tools installs it)")
    folder = tmp_path_factory.mktemp("gallery")
    server = EcrdServer(folder / "data")
    server.start()
    try:
        yield _fill(server, folder)
    finally:
        server.stop()


def _fill(server: EcrdServer, folder: Path) -> Gallery:
    public = server.ecr("ecr-public")
    alias = public.describe_registries()["registries"][0]["aliases"][0]["name"]
    catalogs: dict[str, dict[str, Any]] = {
        WIDGET: {
            "description": "A tiny Widget server",
            "architectures": ["x86-64", "ARM 64"],
            "operatingSystems": ["Linux"],
            "logoImageBlob": LOGO,
            "aboutText": WIDGET_ABOUT,
            "usageText": WIDGET_USAGE,
        },
        SPROCKET: {
            "description": "Spins the haystack NEEDLE gears",
            "architectures": ["ARM 64"],
            "operatingSystems": ["Windows"],
        },
        XSS: {"description": XSS_DESCRIPTION, "aboutText": XSS_TEXT, "usageText": XSS_TEXT},
    }
    uris = {
        name: public.create_repository(repositoryName=name, catalogData=catalog)["repository"][
            "repositoryUri"
        ]
        for name, catalog in catalogs.items()
    }
    (folder / "registries.conf").write_text(REGISTRIES_CONF)
    (folder / "policy.json").write_text(json.dumps(POLICY))
    environment = {key: value for key, value in os.environ.items() if key != "REGISTRY_AUTH_FILE"}
    environment["CONTAINERS_REGISTRIES_CONF"] = str(folder / "registries.conf")
    environment["REGISTRY_AUTH_FILE"] = str(folder / "empty-auth.json")
    skopeo = Skopeo(server, folder / "policy.json", environment)
    token = public.get_authorization_token()["authorizationData"]["authorizationToken"]
    password = base64.b64decode(token).decode().removeprefix("AWS:")
    for number, tag in enumerate(WIDGET_TAGS):
        layout = folder / f"layout-{number}"
        single_image(layout, tag, seed=f"gallery-{number}")
        skopeo(
            "copy", "--dest-tls-verify=false", "--preserve-digests",
            "--dest-creds", f"AWS:{password}",
            f"oci:{layout}:{tag}", f"docker://{server.host}/{alias}/{WIDGET}:{tag}",
        )  # fmt: skip
    details = public.describe_image_tags(repositoryName=WIDGET)["imageTagDetails"]
    tags = {detail["imageTag"]: detail["imageDetail"] for detail in details}
    assert set(tags) == set(WIDGET_TAGS)
    return Gallery(server, alias, uris, tags)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def new_page(browser: Any, **options: Any) -> Any:
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_same_moment(shown: str, expected: datetime) -> None:
    moment = parse_time(shown)
    assert moment.tzinfo is not None, f"{shown!r} has no time zone"
    assert abs(moment - expected) < timedelta(seconds=1), (shown, expected)


def assert_human_size(shown: str, size: int) -> None:
    match = re.fullmatch(r"(\d+(?:\.(\d+))?) (B|KiB|MiB|GiB)", shown.strip())
    assert match, f"{shown!r} is not a human size"
    decimals = len(match.group(2) or "")
    unit = UNITS[match.group(3)]
    assert unit <= max(size, 1) < unit * 1024, f"{shown!r} uses the wrong unit for {size} B"
    assert abs(float(match.group(1)) * unit - size) <= 0.5 * 10**-decimals * unit, (shown, size)


def entry(page: Any, gallery: Gallery, name: str) -> Any:
    """The list item of one repository (found by its link)."""
    link = page.locator(f'a.repository-link[href="/gallery/{gallery.path(name)}"]')
    return page.locator("li.repository").filter(has=link)


def listed(page: Any) -> list[str]:
    links = page.locator("li.repository a.repository-link")
    return [text.strip() for text in links.all_inner_texts()]


def test_list_shows_each_repository_with_its_catalog_data(page: Any, gallery: Gallery) -> None:
    # when the gallery is opened
    response = page.goto(gallery.url(), wait_until="load")
    # then it is an HTML page listing all three repositories
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert sorted(listed(page)) == sorted(gallery.path(name) for name in (WIDGET, SPROCKET, XSS))
    assert page.locator("p.empty").count() == 0
    # and the widget shows its description, badges, logo and latest push
    widget = entry(page, gallery, WIDGET)
    assert widget.count() == 1
    assert widget.locator("a.repository-link").inner_text().strip() == gallery.path(WIDGET)
    assert widget.locator("p.description").inner_text().strip() == "A tiny Widget server"
    architectures = widget.locator("span.badge.architecture").all_inner_texts()
    assert sorted(text.strip() for text in architectures) == ["ARM 64", "x86-64"]
    assert [text.strip() for text in widget.locator("span.badge.os").all_inner_texts()] == ["Linux"]
    logo = widget.locator("img.logo")
    assert logo.count() == 1
    # (the browser loaded and decoded the 2x2 PNG)
    assert logo.evaluate("image => [image.complete, image.naturalWidth]") == [True, 2]
    logo_url = urljoin(page.url, logo.get_attribute("src"))
    served = httpx.get(logo_url, timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"].split(";")[0] == "image/png"
    assert served.content == LOGO
    latest = max(detail["imagePushedAt"] for detail in gallery.tags.values())
    pushed = widget.locator("time.pushed")
    assert pushed.count() == 1
    assert_same_moment(pushed.get_attribute("datetime"), latest)
    # and the sprocket, which has neither logo nor image, shows neither
    sprocket = entry(page, gallery, SPROCKET)
    assert sprocket.locator("p.description").inner_text().strip() == (
        "Spins the haystack NEEDLE gears"
    )
    assert [text.strip() for text in sprocket.locator("span.badge.os").all_inner_texts()] == [
        "Windows"
    ]
    assert sprocket.locator("img.logo").count() == 0
    assert sprocket.locator("time.pushed").count() == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("SPROCK", [SPROCKET], id="name"),
        pytest.param("needle", [SPROCKET], id="description"),
        pytest.param("tiny widget", [WIDGET], id="description-words"),
        pytest.param("Gallery/", [WIDGET, SPROCKET, XSS], id="all"),
    ],
)
def test_search_narrows_the_list(
    page: Any, gallery: Gallery, query: str, expected: list[str]
) -> None:
    page.goto(gallery.url())
    # when a search is submitted through the form
    form = page.locator('form[role="search"]')
    assert form.get_attribute("method").lower() == "get"
    form.locator('input[name="q"]').fill(query)
    form.locator('input[name="q"]').press("Enter")
    page.wait_for_url(re.compile(r"/gallery\?(.*&)?q="))
    # then only the matching repositories remain, case-insensitively
    assert sorted(listed(page)) == sorted(gallery.path(name) for name in expected)
    assert page.locator("p.empty").count() == 0


def test_search_without_match_shows_the_empty_state(page: Any, gallery: Gallery) -> None:
    page.goto(gallery.url())
    page.fill('form[role="search"] input[name="q"]', "no-such-repository-anywhere")
    page.locator('form[role="search"] [type="submit"]').click()
    page.wait_for_url(re.compile(r"q=no-such-repository-anywhere"))
    assert page.locator("li.repository").count() == 0
    assert page.locator("p.empty").is_visible()


def test_clicking_a_repository_opens_its_page_and_back(page: Any, gallery: Gallery) -> None:
    page.goto(gallery.url())
    # when the sprocket's link is clicked
    entry(page, gallery, SPROCKET).locator("a.repository-link").click()
    # then its page opens with its name as the heading
    page.wait_for_url(gallery.page_url(SPROCKET))
    assert page.locator(TITLE).inner_text().strip() == gallery.path(SPROCKET)
    # (it has no image, so its table has no tag rows)
    assert page.locator("tr.tag").count() == 0
    # and a link leads back to the list
    page.locator('a[href="/gallery"]').first.click()
    page.wait_for_url(gallery.url())
    assert len(listed(page)) == 3


def test_repository_page_renders_markdown_and_tags(
    page: Any, gallery: Gallery, tmp_path: Path
) -> None:
    response = page.goto(gallery.page_url(WIDGET), wait_until="load")
    assert response.status == 200
    assert page.locator(TITLE).inner_text().strip() == gallery.path(WIDGET)
    # then the about text is Markdown made into HTML
    about = page.locator("section#about")
    headings = about.locator("h1, h2, h3, h4, h5, h6").all_inner_texts()
    assert "Widget heading" in [text.strip() for text in headings]
    assert about.locator("strong").inner_text() == "bold"
    assert about.locator("em").inner_text() == "emphasised"
    items = about.locator("ul > li").all_inner_texts()
    assert [text.strip() for text in items] == ["first item", "second item", "third item"]
    docs = about.locator("a", has_text="the docs")
    assert docs.get_attribute("href") == "https://example.com/docs"
    assert "widget --help" in about.locator("code").all_inner_texts()
    assert "**" not in about.inner_text()
    # and so is the usage text
    usage = page.locator("section#usage")
    assert usage.locator("strong").inner_text() == "it"
    assert usage.locator("pre code").inner_text().strip() == "docker run widget"
    assert [text.strip() for text in usage.locator("ol > li").all_inner_texts()] == [
        "pull the image",
        "run it",
    ]
    # and the tag table has one row per tag, with size, push time and the pull command
    rows = page.locator("table#tags tr.tag")
    assert rows.count() == len(WIDGET_TAGS)
    seen = set()
    for index in range(rows.count()):
        row = rows.nth(index)
        tag = row.locator("td.tag-name").inner_text().strip()
        seen.add(tag)
        detail = gallery.tags[tag]
        assert_human_size(row.locator("td.size").inner_text(), detail["imageSizeInBytes"])
        assert_same_moment(
            row.locator("td.pushed time").get_attribute("datetime"), detail["imagePushedAt"]
        )
        command = row.locator("td.pull code.pull-command").inner_text().strip()
        assert command == f"docker pull {gallery.uris[WIDGET]}:{tag}"
    assert seen == set(WIDGET_TAGS)
    page.screenshot(path=str(tmp_path / "widget.png"), full_page=True)
    assert (tmp_path / "widget.png").read_bytes().startswith(b"\x89PNG")


def test_catalog_text_cannot_run_script(browser: Any, gallery: Gallery) -> None:
    # (the page's Content-Security-Policy is bypassed, so escaping alone must keep it safe)
    page = new_page(browser, bypass_csp=True)
    try:
        page.goto(gallery.page_url(XSS), wait_until="load")
        assert page.evaluate("window.__xss") is None
        for section in ("section#about", "section#usage"):
            text = page.locator(section)
            # then the raw HTML shows as text and makes no element
            assert SCRIPT_TAG in text.inner_text()
            assert IMG_TAG in text.inner_text()
            assert text.locator("script").count() == 0
            assert text.locator("img").count() == 0
            assert text.locator("[onerror]").count() == 0
        # and the javascript: URL made no link
        assert page.locator('a[href^="javascript" i]').count() == 0
        assert page.locator("section#about a").count() == 0
        # and clicking where the link would be runs nothing
        page.locator("section#about").get_by_text("javascript:window.__xss=3").first.click()
        assert page.evaluate("window.__xss") is None
        # and on the list page the description shows as text too
        page.goto(gallery.url(), wait_until="load")
        description = entry(page, gallery, XSS).locator("p.description")
        assert description.inner_text().strip() == XSS_DESCRIPTION
        assert page.locator("main script").count() == 0
        assert page.evaluate("window.__xss") is None
    finally:
        page.context.close()


def test_pages_work_without_javascript(browser: Any, gallery: Gallery) -> None:
    page = new_page(browser, java_script_enabled=False)
    try:
        page.goto(gallery.url())
        # when a search is submitted with the button
        page.fill('form[role="search"] input[name="q"]', "Widget")
        page.locator('form[role="search"] [type="submit"]').click()
        page.wait_for_url(re.compile(r"q=Widget"))
        # then the list narrows
        assert listed(page) == [gallery.path(WIDGET)]
        # and the repository's link opens its page with its tags
        page.locator("a.repository-link").click()
        page.wait_for_url(gallery.page_url(WIDGET))
        assert page.locator("table#tags tr.tag").count() == len(WIDGET_TAGS)
        assert page.locator("section#about strong").inner_text() == "bold"
    finally:
        page.context.close()


PHONE = {"width": 375, "height": 667}


def open_on_phone(browser: Any, url: str, screenshot: Path) -> tuple[Any, int]:
    """The page at `url` on a 375x667 phone, and its document's scroll width."""
    page = new_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(url, wait_until="load")
    viewport = page.locator('meta[name="viewport"]').get_attribute("content")
    assert re.sub(r"\s", "", viewport) == "width=device-width,initial-scale=1"
    page.screenshot(path=str(screenshot), full_page=True)
    return page, page.evaluate("document.documentElement.scrollWidth")


def test_list_page_reads_on_a_phone_without_horizontal_scrolling(
    browser: Any, gallery: Gallery, tmp_path: Path
) -> None:
    page, width = open_on_phone(browser, gallery.url(), tmp_path / "phone-list.png")
    try:
        assert len(listed(page)) == 3
        assert width <= PHONE["width"], f"the list is {width}px wide on a 375px screen"
    finally:
        page.context.close()


def test_repository_page_content_fits_a_phone(
    browser: Any, gallery: Gallery, tmp_path: Path
) -> None:
    page, _ = open_on_phone(browser, gallery.page_url(WIDGET), tmp_path / "phone-widget.png")
    try:
        # the Markdown (with a long URL and a long code span) and the tag table fit the screen
        for selector in ("section#about", "section#usage", "table#tags", "code.pull-command"):
            boxes = page.locator(selector).evaluate_all(
                "elements => elements.map(e => [e.getBoundingClientRect().right, e.scrollWidth,"
                " e.clientWidth])"
            )
            assert boxes, f"no {selector} on the page"
            for right, scroll_width, client_width in boxes:
                assert right <= PHONE["width"], f"{selector} ends at {right}px"
                assert scroll_width <= max(client_width, 1) + 1, (selector, scroll_width)
    finally:
        page.context.close()


@pytest.mark.parametrize("name", [WIDGET, XSS])
def test_repository_page_reads_on_a_phone_without_horizontal_scrolling(
    browser: Any, gallery: Gallery, tmp_path: Path, name: str
) -> None:
    page, width = open_on_phone(browser, gallery.page_url(name), tmp_path / "phone-page.png")
    try:
        assert page.locator("table#tags, p.empty").count() >= 1
        assert width <= PHONE["width"], f"{name}'s page is {width}px wide on a 375px screen"
    finally:
        page.context.close()


def test_unknown_repository_and_logo_are_not_found(gallery: Gallery) -> None:
    with httpx.Client(timeout=10) as http:
        # an unknown repository has no page and no logo
        assert http.get(gallery.page_url("gallery/nothing-here")).status_code == 404
        assert http.get(gallery.page_url("gallery/nothing-here") + "/logo.png").status_code == 404
        # an unknown alias neither
        assert http.get(gallery.url(f"/no-such-alias/{WIDGET}")).status_code == 404
        # a repository without a logo has none to serve
        assert http.get(gallery.page_url(SPROCKET) + "/logo.png").status_code == 404
        # (while the known ones answer)
        assert http.get(gallery.page_url(SPROCKET)).status_code == 200
        assert http.get(gallery.page_url(WIDGET) + "/logo.png").content == LOGO
