"""The plain browser client at ``/client/``: served as a page of the app's own, self-contained,
and calling only routes the API has.{% if cookiecutter.include_ui %} ``test_browser.py`` drives it in Chromium.{% endif %}"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.app import CLIENT_FILES, CLIENT_PATH

from .conftest import MEDIA

PAGE = f"{CLIENT_PATH}/"
SCRIPT = f"{PAGE}client.js"
JAVASCRIPT = ("text/javascript", "application/javascript")
"""What a module script may be served as (Python's table of types says one or the other)."""
ABSOLUTE_URL = re.compile(r"""[a-z][a-z0-9+.-]*://|["'`(=]\s*//""", re.IGNORECASE)
"""A URL with a scheme, or one that starts with ``//`` (another host, same scheme)."""
PATH_STRING = re.compile(r"""["'`](/[^"'`\s]*)["'`]""")
"""A string literal of the script that is a path of the app."""
LOCKED_DOWN = {
    "admin_token": SecretStr("client-page-token"),
    "cors_origins": ["https://allowed.example"],
}
"""Settings that close the admin routes and open CORS to one origin: the page needs neither."""


class References(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


def script_text() -> str:
    return (CLIENT_FILES / "client.js").read_text()


@pytest.mark.parametrize("settings", [{}, LOCKED_DOWN], indirect=True, ids=["default", "locked"])
async def test_the_page_and_its_script_are_served(http: httpx.AsyncClient) -> None:
    page = await http.get(PAGE)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="client.js">' in page.text

    script = await http.get(SCRIPT)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(JAVASCRIPT)
    assert script.text == script_text()

    bare = await http.get(CLIENT_PATH)  # without its slash: sent to the page
    assert bare.status_code in (301, 307, 308)
    assert urlsplit(bare.headers["location"]).path == PAGE


async def test_a_missing_file_is_the_api_s_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{PAGE}no-such-file.js")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_the_page_loads_nothing_from_elsewhere(http: httpx.AsyncClient) -> None:
    page = (await http.get(PAGE)).text
    for text in (page, script_text()):
        assert not ABSOLUTE_URL.search(text), ABSOLUTE_URL.search(text)
    references = References()
    references.feed(page)
    assert "client.js" in references.found
    for reference in references.found:
        url = urljoin(f"{http.base_url}{PAGE}", reference)
        assert httpx.URL(url).host == http.base_url.host, reference
        assert (await http.get(url, follow_redirects=True)).status_code == 200, reference


async def test_every_path_the_script_calls_is_a_route_of_the_api(app: FastAPI) -> None:
    paths = PATH_STRING.findall(script_text())
    assert paths, "the script names no route"
    routes = set(app.openapi()["paths"]) | {app.openapi_url}
    assert set(paths) <= routes, set(paths) - routes


async def test_the_input_schema_is_where_the_script_reads_it(app: FastAPI) -> None:
    # client.js builds its form from the input route's body schema, a $ref to Input.
    schema = app.openapi()
    route = schema["paths"]["/connections/{connection_id}/input"]["post"]
    body: dict[str, Any] = route["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].split("/")[-1]
    properties = schema["components"]["schemas"][name]["properties"]
    assert properties["gain"]["type"] == "number"
    assert {"minimum", "maximum", "default"} <= set(properties["gain"])


def test_the_script_s_media_are_the_app_s() -> None:
    script = script_text()
    for kind in ("audio", "video"):
        assert f"  {kind}: {str(MEDIA[kind]).lower()},\n" in script
    assert f'  direction: "{MEDIA["direction"]}",\n' in script
