"""Fuzz every route of the OpenAPI schema with hypothesis: no input may cause a 5xx."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]

APP = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in APP.openapi()["paths"].items()
    for method in item
    if not path.startswith("/telephone")
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
offer_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["offer", "answer", "ice-candidate"]) | st.text(max_size=8),
        "sdp": st.text(max_size=200) | st.just("v=0\r\n") | json_values,
        "webrtc_id": st.text(alphabet="abcXYZ019_-.!/ ", max_size=70) | json_values,
        "candidate": json_values,
    },
)
# Well-formed envelopes with hostile contents reach past validation, into the stream itself.
offers = st.fixed_dictionaries(
    {
        "type": st.just("offer"),
        "sdp": st.text(max_size=200) | st.just("v=0\r\n"),
        "webrtc_id": st.from_regex(r"\A[A-Za-z0-9_-]{8,20}\Z"),
    }
)
path_ids = st.text(alphabet="abcXYZ019_-.%~", min_size=0, max_size=70).filter(
    lambda s: s not in ("", ".", "..")
)


async def request(operation: tuple[str, str], connection_id: str, body: Any) -> int:
    method, path = operation
    url = path.replace("{connection_id}", connection_id)
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        if method == "GET" and url.endswith("/outputs"):
            async with http.stream(method, url) as response:
                return response.status_code
        return (await http.request(method, url, json=body)).status_code


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    operation=st.sampled_from(OPERATIONS),
    connection_id=path_ids,
    body=offers | offer_like | json_values,
)
def test_no_input_causes_a_server_error(
    operation: tuple[str, str], connection_id: str, body: Any
) -> None:
    status = asyncio.run(request(operation, connection_id, body))
    # /ready answers 503 by design once fuzzed offers (a bare "v=0" SDP is a valid empty
    # offer) fill the concurrency limit; every other 5xx is a bug.
    full = operation == ("GET", "/ready") and status == 503
    assert status < 500 or full, (operation, connection_id, body, status)
