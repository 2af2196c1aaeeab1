"""GET /: the sessions page for browsers, JSON for everyone else; device names
parsed in the page."""
import base64
import hashlib
import json
import re
import shutil
import subprocess

import pytest

import authenticator
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


def test_the_signed_in_page_has_a_recent_activity_list_under_the_sessions(api):
    _, _, body = get(api, BROWSER)
    sessions, activity = body.index('id="sessions"'), body.index('id="activity"')
    assert sessions < activity < body.index('id="password-form"')
    assert "<h2>Recent activity</h2>" in body and 'id="events"' in body
    assert 'api("GET", "users/me/events?limit=20")' in body


# Second factors and passkeys: the page's own WebAuthn encoding and words,
# run with node against what the service really sends and accepts.
def in_page(program, data):
    """The JSON that ``program`` writes with out(), run after the page's
    top-level functions, with ``data`` as ``input``."""
    body = page.page()[0]
    script = re.search(r"<script>(.*?)</script>", body, re.S).group(1)
    functions = script[:script.index("(function () {")]
    source = functions + "\nconst input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n" \
        "const out = (value) => process.stdout.write(JSON.stringify(value));\n" \
        "const buffer = (text) => fromB64url(text).buffer;\n" + program
    run = subprocess.run([NODE, "-e", source], input=json.dumps(data), capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(run.stdout)


@pytest.fixture
def node():
    if NODE is None:
        pytest.skip("node is not installed")


def test_the_qr_code_is_the_only_thing_the_policy_adds_data_urls_for(api):
    _, headers, _ = get(api, BROWSER)
    directives = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    assert directives["img-src"] == "'self' data:"
    assert [name for name, value in directives.items() if "data:" in value] == ["img-src"]


def passkey_options(api, token):
    return api.call("POST", "/api/v1/users/me/passkeys/options", token=token).json


def made_in_page(made):
    """What the page sends for navigator.credentials.create's answer ``made``
    (the authenticator's credential, as the browser hands it over)."""
    return in_page("""out(credentialJSON({
        id: input.id, rawId: buffer(input.rawId), type: input.type,
        response: { clientDataJSON: buffer(input.response.clientDataJSON),
                    attestationObject: buffer(input.response.attestationObject),
                    getTransports: () => input.response.transports },
        getClientExtensionResults: () => ({}), authenticatorAttachment: "platform" }))""", made)


def used_in_page(used):
    """What the page sends for navigator.credentials.get's answer ``used``."""
    return in_page("""out(credentialJSON({
        id: input.id, rawId: buffer(input.rawId), type: input.type,
        response: { clientDataJSON: buffer(input.response.clientDataJSON),
                    authenticatorData: buffer(input.response.authenticatorData),
                    signature: buffer(input.response.signature),
                    userHandle: buffer(input.response.userHandle) },
        getClientExtensionResults: () => ({}), authenticatorAttachment: "platform" }))""", used)


@pytest.fixture
def passkey(api, node):
    """Alice's token and a passkey she registered through the page's encoding."""
    token = api.user("alice")
    challenge = passkey_options(api, token)
    credential, made = authenticator.create(challenge["options"])
    reply = api.call("POST", "/api/v1/users/me/passkeys", {
        "challenge_id": challenge["challenge_id"], "credential": made_in_page(made),
        "name": "laptop"}, token=token)
    assert reply.status == 201, reply.json
    return token, credential


def test_the_page_turns_the_services_creation_options_into_bytes(api, passkey):
    token, credential = passkey
    options = passkey_options(api, token)["options"]
    decoded = in_page("const o = creationOptions(input);"
                      "out({challenge: [...o.challenge], user: [...o.user.id],"
                      " exclude: o.excludeCredentials.map((c) => [...c.id]),"
                      " rp: o.rp, params: o.pubKeyCredParams, selection: o.authenticatorSelection})",
                      options)
    assert bytes(decoded["challenge"]) == authenticator.unb64url(options["challenge"])
    assert bytes(decoded["user"]) == authenticator.unb64url(options["user"]["id"])
    assert [bytes(i) for i in decoded["exclude"]] == [credential.id]
    assert (decoded["rp"], decoded["params"], decoded["selection"]) == (
        options["rp"], options["pubKeyCredParams"], options["authenticatorSelection"])


def test_the_page_turns_a_second_steps_request_options_into_bytes(api, passkey):
    mfa_token = api.login("alice").json["mfa_token"]
    options = api.call("POST", "/api/v1/login/passkey/options",
                       {"mfa_token": mfa_token}).json["options"]
    decoded = in_page("const o = requestOptions(input);"
                      "out({challenge: [...o.challenge], allow: o.allowCredentials.map((c) => [...c.id]),"
                      " rpId: o.rpId, userVerification: o.userVerification})", options)
    assert bytes(decoded["challenge"]) == authenticator.unb64url(options["challenge"])
    assert [bytes(i) for i in decoded["allow"]] == [passkey[1].id]
    assert (decoded["rpId"], decoded["userVerification"]) == ("localhost", "required")


def test_a_passkey_the_page_registered_signs_in_with_the_assertion_the_page_sends(api, passkey):
    challenge = api.call("POST", "/api/v1/login/passkey/options", {}).json
    used = authenticator.get(passkey[1], challenge["options"])
    reply = api.call("POST", "/api/v1/login/passkey", {
        "challenge_id": challenge["challenge_id"], "credential": used_in_page(used)})
    assert reply.status == 200, reply.json


def test_every_login_method_and_second_factor_event_reads_as_words(node):
    from chalicelib.terms import FACTOR_EVENT_TYPES, LOGIN_METHODS

    events = [{"type": "login", "method": m} for m in LOGIN_METHODS] + [
        {"type": t, "method": None} for t in FACTOR_EVENT_TYPES]
    words = in_page("out(input.map(securityWords))", events)
    assert all(w and w.startswith("Signed in with ") for w in words[:len(LOGIN_METHODS)]), words
    assert len(set(words)) == len(events)
    assert not set(words) & set(LOGIN_METHODS + FACTOR_EVENT_TYPES)
    assert in_page("out(securityWords(input))", {"type": "logout", "method": None}) is None


# Device names, parsed in the page: run its deviceName with node.
NODE = shutil.which("node")
AGENTS = [
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on macOS"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70", "Edge 131 on Windows"),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox 133 on Linux"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari 18 on iOS"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.6778.81 Mobile Safari/537.36", "Chrome 131 on Android"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet 26 on Android"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera 115 on Windows"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on ChromeOS"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", "Safari 18 on macOS"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/131.0.6778.33 Safari/537.36", "Chrome 131 on Linux"),
    ("curl/8.5.0", "curl 8.5"),
    ("python-requests/2.32.3", "python-requests 2.32"),
    ("Mozilla/5.0 (X11; Linux x86_64) SomethingNew/1.0", "A browser on Linux"),
    ("work laptop", "work laptop"),
    ("<b>not html</b>", "<b>not html</b>"),
    (None, "unnamed device"),
]


def device_names(agents):
    """deviceName of each agent, as the page's own script computes it."""
    body = page.page()[0]
    source = re.search(r"^function deviceName\(agent\) \{.*?^\}$", body, re.S | re.M).group(0)
    program = source + "\nprocess.stdout.write(JSON.stringify(JSON.parse(" \
        "require('fs').readFileSync(0, 'utf8')).map(deviceName)));"
    run = subprocess.run([NODE, "-e", program], input=json.dumps(agents), capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_user_agent_becomes_a_name_a_person_recognises():
    assert device_names([a for a, _ in AGENTS]) == [name for _, name in AGENTS]



# Email: verification and account recovery, on the page.
def script_of(body):
    return re.search(r"<script>(.*?)</script>", body, re.S).group(1)


def test_the_hashes_cover_every_script_and_style_of_the_page(api):
    """One script and one style, both hashed: a second block, or a style
    attribute, would be blocked by the policy (and silently do nothing)."""
    _, _, body = get(api, BROWSER)
    assert body.count("<script") == 1 and body.count("<style") == 1
    assert not re.search(r"\sstyle\s*=", body)


def test_the_sign_in_form_offers_a_reset_by_email(api):
    _, _, body = get(api, BROWSER)
    signed_out = body[body.index('id="signed-out"'):body.index('id="signed-in"')]
    assert 'id="forgot-open"' in signed_out and "Forgot your password?" in signed_out
    assert re.search(r'<form id="forgot-form">\s*<label>[^<]*<input name="email" type="email"',
                     signed_out)
    assert 'api("POST", "password/forgot", { email: values(e.target).email })' in body


def test_the_reset_form_asks_for_the_new_password_twice(api):
    _, _, body = get(api, BROWSER)
    form = re.search(r'<form id="reset-form">(.*?)</form>', body, re.S).group(1)
    assert re.findall(r'<input name="(\w+)" type="password" autocomplete="new-password"', form) == [
        "new_password", "again"]


def test_the_signed_in_page_has_the_verify_notice_and_the_change_of_address(api):
    _, _, body = get(api, BROWSER)
    signed_in = body[body.index('id="signed-in"'):body.index("<script>")]
    assert 'id="verify-notice"' in signed_in and 'id="resend"' in signed_in
    form = re.search(r'<form id="email-form">(.*?)</form>', signed_in, re.S).group(1)
    assert 'name="password" type="password"' in form and 'name="new_email" type="email"' in form
    assert 'api("POST", "users/me/email/verification")' in body
    assert 'api("POST", "users/me/email", data)' in body


def test_every_event_type_has_words_on_the_page(api):
    from chalicelib.terms import EVENT_TYPES

    script = script_of(get(api, BROWSER)[2])
    assert [t for t in EVENT_TYPES if not re.search(rf"\b{t}: \"", script)] == []


def links_in(hashes):
    """linkIn of each location.hash, as the page's own script reads it."""
    source = re.search(r"^function linkIn\(hash\) \{.*?^\}$", page.page()[0], re.S | re.M).group(0)
    program = source + "\nprocess.stdout.write(JSON.stringify(JSON.parse(" \
        "require('fs').readFileSync(0, 'utf8')).map(linkIn)));"
    run = subprocess.run([NODE, "-e", program], input=json.dumps(hashes), capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_page_reads_a_mails_link_from_the_fragment_only():
    assert links_in(["#verify=u1.abc-_9", "#reset=u1.xyz", "", "#", "#login",
                     "#verify", "#other=u1.abc", "#reset="]) == [
        {"kind": "verify", "secret": "u1.abc-_9"}, {"kind": "reset", "secret": "u1.xyz"},
        None, None, None, None, None, None]
