"""End to end: the sessions page's second factors in Chromium against the
real `make run` stack. TOTP codes come from pyotp and the secret the page
shows; passkeys from Chromium's own virtual authenticator (the DevTools
protocol's WebAuthn domain), so the page's calls to navigator.credentials
are the ones a person's browser makes.

The page is opened at http://localhost:PORT/, not 127.0.0.1: WebAuthn
refuses an IP address as relying party id, and make run's PUBLIC_URL (whose
host is the RP id and whose origin the service expects) names localhost.
"""
import os
import time

import pyotp
import pytest
import requests

from stack import ROOT, module_stack

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
# Under build/ so that a run leaves the work tree clean; the pictures in
# docs/screenshots/ are copies of these, refreshed by hand.
SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")
PASSWORD = "a long enough password"

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


stack = module_stack("security")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, stack):
    """A fresh browser context on the page, at localhost."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    tab = context.new_page()
    tab.goto(f"http://localhost:{stack.port}/")
    yield tab
    context.close()


def with_authenticator(page):
    """A platform authenticator in Chromium, as a phone's or a laptop's:
    it keeps discoverable credentials and verifies its user. The credentials
    it holds, read through the DevTools protocol."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return lambda: cdp.send("WebAuthn.getCredentials",
                            {"authenticatorId": added["authenticatorId"]})["credentials"]


def signed_up(stack, name):
    reply = requests.post(stack.base + "/api/v1/signup", timeout=10, json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert reply.status_code == 201, reply.text
    return name


def password_login(page, name):
    page.fill("#login-form [name=username]", name)
    page.fill("#login-form [name=password]", PASSWORD)
    page.click("#login-form button")


def logged_in(page, name):
    password_login(page, name)
    expect(page.locator("#signed-in")).to_be_visible()


def sign_out(page):
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()


def add_passkey(page, name):
    page.fill("#passkey-add-form [name=name]", name)
    page.click("#passkey-add-form button")
    expect(page.locator("#message")).to_have_text("Passkey added.")


def start_totp(page):
    """TOTP begun in the page: a generator of the secret it shows."""
    page.fill("#totp-start-form [name=password]", PASSWORD)
    page.click("#totp-start-form button")
    expect(page.locator("#totp-setup")).to_be_visible()
    return pyotp.TOTP(page.locator("#totp-secret").inner_text().replace(" ", ""))


def turned_on(page, name):
    """A user signed in with TOTP on: its generator and recovery codes."""
    logged_in(page, name)
    totp = start_totp(page)
    page.fill("#totp-confirm-form [name=code]", totp.now())
    page.click("#totp-confirm-form button")
    expect(page.locator("#recovery-list li")).to_have_count(10)
    codes = page.locator("#recovery-list li").all_inner_texts()
    page.click("#recovery-done")
    return totp, codes


def test_totp_set_up_in_the_page_is_asked_for_at_the_next_password_login(stack, page):
    """Setup shows the QR code (an image the CSP lets the browser draw) and
    the secret; a wrong first code keeps the session, the right one turns
    TOTP on and shows 10 recovery codes; the next password login asks for
    the second step by each method the user has (she has a passkey too) and
    completes with a code, and the log says how."""
    with_authenticator(page)
    logged_in(page, signed_up(stack, "tess"))
    expect(page.locator("#totp-status")).to_contain_text("Off")
    totp = start_totp(page)
    assert page.locator("#totp-qr").get_attribute("src").startswith("data:image/svg+xml")
    page.wait_for_function("document.getElementById('totp-qr').naturalWidth > 0")
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.locator("#security").screenshot(path=os.path.join(SCREENSHOTS, "security-setup.png"))

    page.fill("#totp-confirm-form [name=code]", "000000" if totp.now() != "000000" else "111111")
    page.click("#totp-confirm-form button")
    expect(page.locator("#message")).to_have_text("The code is not valid.")
    expect(page.locator("#signed-in")).to_be_visible()

    page.fill("#totp-confirm-form [name=code]", totp.now())
    page.click("#totp-confirm-form button")
    expect(page.locator("#message")).to_have_text("Authenticator app turned on.")
    expect(page.locator("#recovery-list li")).to_have_count(10)
    expect(page.locator("#totp-status")).to_contain_text("10 recovery codes left")
    expect(page.locator("#totp-setup")).to_be_hidden()
    expect(page.locator("#totp-secret")).to_have_text("")  # shown once: gone from the page
    expect(page.locator("#events tr[data-type=mfa_enabled]")).to_contain_text(
        "Authenticator app turned on")
    add_passkey(page, "work laptop")
    page.locator("#security").screenshot(path=os.path.join(SCREENSHOTS, "security.png"))

    sign_out(page)
    password_login(page, "tess")
    expect(page.locator("#second-step")).to_be_visible()
    expect(page.locator("#mfa-code-form")).to_be_visible()
    expect(page.locator("#mfa-recovery-form")).to_be_visible()
    expect(page.locator("#mfa-passkey-row")).to_be_visible()
    page.screenshot(path=os.path.join(SCREENSHOTS, "second-step.png"))
    # The step after the one the confirmation spent: a used step is refused.
    page.fill("#mfa-code-form [name=code]", totp.at(time.time() + 30))
    page.click("#mfa-code-form button")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#events tr[data-type=login]").first).to_contain_text(
        "Signed in with a password and an authenticator app code")


def test_a_recovery_code_shown_at_setup_completes_a_password_login(stack, page):
    _, codes = turned_on(page, signed_up(stack, "rory"))
    expect(page.locator("#recovery-list li")).to_have_count(0)  # put away: gone from the page

    sign_out(page)
    password_login(page, "rory")
    page.fill("#mfa-recovery-form [name=recovery_code]", codes[3])
    page.click("#mfa-recovery-form button")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#totp-status")).to_contain_text("9 recovery codes left")
    expect(page.locator("#events tr[data-type=login]").first).to_contain_text(
        "Signed in with a password and a recovery code")


def test_a_passkey_added_in_the_page_signs_in_with_no_password(stack, page):
    held = with_authenticator(page)
    logged_in(page, signed_up(stack, "pia"))
    add_passkey(page, "laptop key")
    row = page.locator("#passkeys tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("laptop key")
    expect(row.locator("td").nth(2)).to_have_text("never")
    assert [c["isResidentCredential"] for c in held()] == [True]  # discoverable

    sign_out(page)
    page.click("#passkey-login")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#who")).to_have_text("pia")
    expect(page.locator("#events tr[data-type=login]").first).to_contain_text(
        "Signed in with a passkey")
    expect(row.locator("td").nth(2)).not_to_have_text("never")


def test_a_passkey_is_the_second_step_of_a_password_login(stack, page):
    with_authenticator(page)
    logged_in(page, signed_up(stack, "quinn"))
    add_passkey(page, "phone")
    sign_out(page)

    password_login(page, "quinn")
    expect(page.locator("#second-step")).to_be_visible()
    expect(page.locator("#mfa-code-form")).to_be_hidden()  # no TOTP: no code to type
    page.click("#mfa-passkey")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#events tr[data-type=login]").first).to_contain_text(
        "Signed in with a password and a passkey")


def test_a_passkey_removed_with_the_password_no_longer_signs_in(stack, page):
    with_authenticator(page)
    logged_in(page, signed_up(stack, "remy"))
    add_passkey(page, "old key")
    page.click("#passkeys tr button")
    page.fill("#passkey-remove-form [name=password]", PASSWORD)
    page.click("#passkey-remove-form button[type=submit]")
    expect(page.locator("#message")).to_have_text("Passkey removed.")
    expect(page.locator("#passkeys tr")).to_have_count(0)
    expect(page.locator("#no-passkeys")).to_be_visible()

    sign_out(page)
    page.click("#passkey-login")
    expect(page.locator("#message")).to_have_text("This passkey was not accepted.")
    expect(page.locator("#signed-out")).to_be_visible()


def test_totp_turned_off_in_the_page_leaves_the_password_alone(stack, page):
    totp, _ = turned_on(page, signed_up(stack, "otto"))
    page.fill("#totp-disable-form [name=password]", PASSWORD)
    page.fill("#totp-disable-form [name=code]", totp.at(time.time() + 30))
    page.click("#totp-disable-form button")
    expect(page.locator("#message")).to_contain_text("Authenticator app turned off")
    expect(page.locator("#totp-status")).to_contain_text("Off")
    expect(page.locator("#totp-start-form")).to_be_visible()

    sign_out(page)
    password_login(page, "otto")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#events tr[data-type=login]").first).to_contain_text(
        "Signed in with a password")


def test_new_recovery_codes_in_the_page_kill_the_old_ones(stack, page):
    """The renewal shows 10 new codes; at the next login an old one is
    refused and the prompt stays, a new one completes the login."""
    totp, old = turned_on(page, signed_up(stack, "nell"))
    page.fill("#recovery-renew-form [name=password]", PASSWORD)
    page.fill("#recovery-renew-form [name=code]", totp.at(time.time() + 30))
    page.click("#recovery-renew-form button")
    expect(page.locator("#message")).to_contain_text("New recovery codes made")
    new = page.locator("#recovery-list li").all_inner_texts()
    assert len(new) == 10 and not set(new) & set(old)

    sign_out(page)
    password_login(page, "nell")
    page.fill("#mfa-recovery-form [name=recovery_code]", old[0])
    page.click("#mfa-recovery-form button")
    expect(page.locator("#message")).to_have_text("The code is not valid.")
    expect(page.locator("#second-step")).to_be_visible()
    page.fill("#mfa-recovery-form [name=recovery_code]", new[0])
    page.click("#mfa-recovery-form button")
    expect(page.locator("#signed-in")).to_be_visible()


def test_a_page_opened_at_another_address_says_where_passkeys_work(stack, page):
    """At 127.0.0.1 the browser refuses the RP id localhost; the page says
    where to go rather than that no passkey was used."""
    with_authenticator(page)
    page.goto(stack.base + "/")
    logged_in(page, signed_up(stack, "ines"))
    page.click("#passkey-add-form button")
    expect(page.locator("#message")).to_have_text(
        "Passkeys work only on this page at localhost, the address they are bound to.")
    expect(page.locator("#passkeys tr")).to_have_count(0)
