"""The API docs pages load everything from agentdeck itself (README: assets served locally):
no Google Fonts on ReDoc, no schema sent to Swagger's online validator (issue #14, item 6)."""

from __future__ import annotations

import re

import pytest

DOCS_PAGES = ["/api/redoc/", "/api/docs/"]
# Any reference to another host: a scheme-qualified or protocol-relative URL.
EXTERNAL = re.compile(r"""(?i)(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+""")
ASSETS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_a_docs_page_references_no_other_host(client, page):
    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)
    assets = ASSETS.findall(html)
    assert assets  # the page does load its scripts, from here
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset


def test_swagger_ui_does_not_ask_the_online_validator(client):
    # Swagger UI's default validatorUrl is validator.swagger.io, which it sends the schema URL.
    assert '"validatorUrl": null' in client.get("/api/docs/").content.decode()
