"""GET /: the sessions page for browsers, JSON for everyone else."""
import base64
import hashlib
import re

import pytest

from chalicelib import page

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def get(api, accept):
    reply = api.http.request("GET", "/", headers={"Accept": accept} if accept else {})
    return reply.status_code, reply.headers, reply.body.decode("utf-8")


@pytest.mark.parametrize("accept", [None, "*/*", "application/json",
                                    "application/json, text/html;q=0.5"])
def test_api_clients_get_json(api, accept):
    status, headers, body = get(api, accept)
    assert status == 200 and body.startswith("{")
    assert '"service"' in body


def test_a_browser_gets_the_page(api):
    status, headers, body = get(api, BROWSER)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "<title>Sessions</title>" in body


def test_the_page_allows_only_its_own_script_and_style(api):
    _, headers, body = get(api, BROWSER)
    policy = headers["Content-Security-Policy"]
    script = re.search(r"<script>(.*?)</script>", body, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_is_safe_by_construction(api):
    _, _, body = get(api, BROWSER)
    script = re.search(r"<script>(.*?)</script>", body, re.S).group(1)
    assert not re.search(r"\son[a-z]+\s*=", body)          # no inline event handlers
    assert "localStorage." not in script and "sessionStorage." not in script
    assert "innerHTML" not in script and "document.write" not in script
    assert "http://" not in body and "https://" not in body  # no CDN, nothing remote
    assert 'fetch(base + "api/v1/' in script                # relative to where it is served


@pytest.mark.parametrize("accept,expected", [
    (BROWSER, True), ("text/html", True), ("*/*", False), ("", False), (None, False),
    ("application/json", False), ("text/html;q=0.2, application/json", False),
    ("text/html;q=bad", False),
])
def test_content_negotiation(accept, expected):
    assert page.wants_html(accept) is expected
