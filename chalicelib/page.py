"""The sessions page: one self-contained HTML file, served at GET / to
browsers, with a Content-Security-Policy that allows exactly its own inline
script and style (by hash), and nothing from anywhere else."""
import base64
import functools
import hashlib
import os
import re

_PAGE = os.path.join(os.path.dirname(__file__), "page.html")


def _hash(text):
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


@functools.cache
def page():
    """(body, headers), read and hashed once per process."""
    with open(_PAGE, encoding="utf-8") as f:
        html = f.read()
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    # img-src data: for the TOTP QR code, the server's SVG shown as an image
    # (an image runs no script and loads nothing else).
    policy = ("default-src 'none'; "
              f"script-src {_hash(script)}; style-src {_hash(style)}; "
              "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    return html, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Vary": "Accept",
    }


def wants_html(accept):
    """True when an Accept header prefers text/html to JSON (browsers do;
    curl's */* and API clients' application/json do not)."""
    weights = {}
    for part in (accept or "").split(","):
        kind, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        weights[kind.lower()] = max(weights.get(kind.lower(), 0.0), quality)
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)
