"""End to end in Chromium: getting back in by email through the sessions
page, on the real `make run` stack, each link read from make run's output
and opened in a new tab, as a person clicks it in a mail."""
import contextlib
import os
import re

import pytest
import requests

from stack import module_stack
from test_email_e2e import PASSWORD, a_minute_passes, post, reset_link, verified_user
from test_make_run import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="Debian's chromium is not installed (.ci/run installs it)")]

OLD, NEW = "maya's first password", "maya's second password"
FORGOT_SENT = ("If that address belongs to an account with a verified address, "
               "a link is on its way. It works once.")


@contextlib.contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


stack = module_stack("mailpage")


def mailed_link(stack, to, kind, seen=0):
    """The whole ``kind`` link of the first such mail to ``to`` after the
    first ``seen``, as make run printed it."""
    secret = stack.link(to, kind, seen=seen)
    text = next(m["text"] for m in stack.mail(to)[seen:] if secret in m["text"])
    return re.search(rf"\S+#{kind}={re.escape(secret)}", text).group(0)


def opened(context, link):
    """A new tab on ``link``, as a click in a mail opens it."""
    tab = context.new_page()
    tab.goto(link)
    return tab


def sign_in(page, password, username="maya"):
    from playwright.sync_api import expect

    page.fill("#login-form [name=username]", username)
    page.fill("#login-form [name=password]", password)
    page.click("#login-form button")
    expect(page.locator("#signed-in")).to_be_visible()


def test_recovery_by_email_through_the_page_in_chromium(stack):
    """Sign up and verify the address through the mailed link; forget the
    password, reset it through the mailed link and find every old session
    gone; change the address and verify the new one."""
    from playwright.sync_api import expect

    base = f"http://localhost:{stack.port}/"  # make run's PUBLIC_URL, as the mails name it
    email, new_email = "maya@example.com", "maya@example.org"
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with chromium() as browser:
        laptop = browser.new_context(viewport={"width": 1000, "height": 900})
        page = laptop.new_page()
        page.goto(base)
        page.fill("#signup-form [name=username]", "maya")
        page.fill("#signup-form [name=email]", email)
        page.fill("#signup-form [name=password]", OLD)
        page.click("#signup-form button")
        expect(page.locator("#message")).to_have_text(
            f"Account maya created, and a link to verify {email} is on its way. "
            "You can log in now.")
        sign_in(page, OLD)

        # Not verified yet: the notice, and its button sends a newer link.
        notice = page.locator("#verify-notice")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(f"Your address {email} is not verified yet")
        expect(page.locator("#email-state")).to_have_text("(not verified)")
        page.screenshot(path=os.path.join(SCREENSHOTS, "verify-notice.png"), full_page=True)
        first = mailed_link(stack, email, "verify")
        assert first.startswith(base + "#verify=")
        a_minute_passes(stack, email)
        page.click("#resend")
        expect(page.locator("#message")).to_contain_text(f"A new link is on its way to {email}")
        second = mailed_link(stack, email, "verify", seen=1)

        # The superseded link says so; the newer one verifies, and
        # neither stays in the address bar.
        stale = opened(laptop, first)
        expect(stale.locator("#message")).to_contain_text(
            "This verification link does not work any more")
        assert stale.url == base
        landing = opened(laptop, second)
        expect(landing.locator("#message")).to_have_text(f"Your address {email} is verified.")
        assert landing.url == base
        page.click("#refresh")
        expect(notice).to_be_hidden()
        expect(page.locator("#email-state")).to_have_text("(verified)")

        # Forgotten: asked for from the sign-in form of another browser.
        before = requests.post(stack.base + "/api/v1/login", timeout=10, json={
            "username": "maya", "password": OLD}).json()["token"]
        a_minute_passes(stack, email)
        seen = len(stack.mail(email))
        phone = browser.new_context(viewport={"width": 1000, "height": 900})
        forgot = phone.new_page()
        forgot.goto(base)
        forgot.click("#forgot-open")
        forgot.fill("#forgot-form [name=email]", "nobody@example.com")
        forgot.click("#forgot-form button")
        expect(forgot.locator("#message")).to_have_text(FORGOT_SENT)
        forgot.fill("#forgot-form [name=email]", email)
        forgot.click("#forgot-form button")
        expect(forgot.locator("#message")).to_have_text(FORGOT_SENT)
        forgot.screenshot(path=os.path.join(SCREENSHOTS, "forgot.png"), full_page=True)

        # The reset link: a form for the new password, the secret gone
        # from the address bar at once.
        reset = opened(phone, mailed_link(stack, email, "reset", seen=seen))
        expect(reset.locator("#reset")).to_be_visible()
        assert reset.url == base
        reset.fill("#reset-form [name=new_password]", NEW)
        reset.fill("#reset-form [name=again]", NEW)
        reset.screenshot(path=os.path.join(SCREENSHOTS, "reset.png"), full_page=True)
        reset.fill("#reset-form [name=again]", NEW + " typo")
        reset.click("#reset-form button")
        expect(reset.locator("#message")).to_have_text(
            "The two passwords differ; type the same one twice.")
        reset.fill("#reset-form [name=again]", NEW)
        reset.click("#reset-form button")
        expect(reset.locator("#message")).to_have_text(
            "Your password is set, and every session was signed out (2). "
            "Sign in with the new password.")
        expect(reset.locator("#reset")).to_be_hidden()

        # Every session opened before is gone: the API's token and the
        # laptop's page; the new password signs in.
        me = requests.get(stack.base + "/api/v1/users/me", timeout=10,
                          headers={"Authorization": f"Bearer {before}"})
        assert me.status_code == 403
        page.click("#refresh")
        expect(page.locator("#signed-out")).to_be_visible()
        expect(page.locator("#message")).to_contain_text("Your session has ended")
        sign_in(page, NEW)
        asked = page.locator("#events tr[data-type=password_reset_requested]")
        expect(asked).to_have_count(1)
        expect(asked).to_contain_text("A password reset was asked for")
        expect(asked).to_contain_text("someone (not proven to be you)")

        # A new address: a link to it, and the address changes when it is opened.
        page.fill("#email-form [name=password]", NEW)
        page.fill("#email-form [name=new_email]", new_email)
        page.click("#email-form button")
        expect(page.locator("#message")).to_have_text(
            f"A link went to {new_email}. Your address changes to it when that link is "
            f"opened; until then it stays {email}.")
        moved = opened(laptop, mailed_link(stack, new_email, "verify"))
        expect(moved.locator("#message")).to_have_text(
            f"Your address {new_email} is verified.")
        page.click("#refresh")
        expect(page.locator("#email")).to_have_text(new_email)
        expect(page.locator("#email-state")).to_have_text("(verified)")
        expect(page.locator("#events tr").first).to_contain_text("Email address verified")
        expect(page.locator("#events tr[data-type=email_changed]")).to_contain_text(
            "Email address changed")


def test_the_page_tells_each_refusal_in_its_own_words(stack):
    """A wrong password, a taken address, an address taken before its link
    was opened, a lock after failures, a spent reset link: each said
    plainly, and the page keeps working."""
    from playwright.sync_api import expect

    email = verified_user(stack, "nina")
    verified_user(stack, "omar")
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.goto(stack.base + "/")
        sign_in(page, PASSWORD, "nina")
        message = page.locator("#message")

        def change(password, new_email):
            page.fill("#email-form [name=password]", password)
            page.fill("#email-form [name=new_email]", new_email)
            page.click("#email-form button")

        change("not her password", "nina@example.net")
        expect(message).to_have_text("The password is incorrect.")
        change(PASSWORD, "omar@example.com")
        expect(message).to_have_text("That address belongs to another account.")

        change(PASSWORD, "shared@example.com")
        expect(message).to_contain_text("A link went to shared@example.com.")
        link = mailed_link(stack, "shared@example.com", "verify")
        assert post(stack, "/signup", {"username": "pat", "email": "shared@example.com",
                                       "password": PASSWORD}).status_code == 201
        landing = opened(context, link)
        expect(landing.locator("#message")).to_have_text(
            "That address now belongs to another account, so it cannot be yours here. "
            "Sign in and choose another one.")

        for _ in range(6):  # the fifth failure in a row sets the lock
            with page.expect_response(lambda r: r.url.endswith("/users/me/email")) as reply:
                change("still not her password", "nina@example.net")
            if reply.value.status == 429:
                break
        expect(message).to_have_text("Too many failed logins for this username; "
                                     "wait and try again.")
        expect(page.locator("#signed-in")).to_be_visible()

        link = reset_link(stack, email)
        spent = opened(context, f"http://localhost:{stack.port}/#reset={link}")
        spent.fill("#reset-form [name=new_password]", "password123")
        spent.fill("#reset-form [name=again]", "password123")
        spent.click("#reset-form button")
        expect(spent.locator("#message")).to_have_text(
            "Some fields are invalid. new_password: This password is one of the most common "
            "ones; choose another.")
        expect(spent.locator("#reset")).to_be_visible()
        # Spent elsewhere (another tab, a second click in the mail) meanwhile.
        assert post(stack, "/password/reset", {"token": link, "new_password": NEW}).ok
        spent.fill("#reset-form [name=new_password]", "yet another password")
        spent.fill("#reset-form [name=again]", "yet another password")
        spent.click("#reset-form button")
        expect(spent.locator("#message")).to_have_text(
            "This reset link does not work any more: it was used, it expired, or a newer one "
            "replaced it. Ask for a new one with \u201cForgot your password?\u201d.")
        expect(spent.locator("#reset")).to_be_hidden()
        expect(spent.locator("#forgot")).to_be_visible()


def test_sending_the_link_again_for_an_address_verified_meanwhile_says_so(stack):
    from playwright.sync_api import expect

    email = "vic@example.com"
    assert post(stack, "/signup", {"username": "vic", "email": email,
                                   "password": PASSWORD}).status_code == 201
    with chromium() as browser:
        page = browser.new_page()
        page.goto(stack.base + "/")
        sign_in(page, PASSWORD, "vic")
        expect(page.locator("#verify-notice")).to_be_visible()
        # Verified in another tab: this one's notice is out of date.
        assert post(stack, "/email/verify", {"token": stack.link(email, "verify")}).ok
        page.click("#resend")
        expect(page.locator("#message")).to_have_text("Your address is already verified.")
        expect(page.locator("#verify-notice")).to_be_hidden()
        expect(page.locator("#email-state")).to_have_text("(verified)")


def test_a_mangled_link_reads_as_a_link_that_does_not_work(stack):
    """A secret cut short or run on by a mail client is refused by the
    API's schema (422) before any lookup; to a person it is just a link
    that does not work."""
    from playwright.sync_api import expect

    with chromium() as browser:
        context = browser.new_context()
        landing = opened(context, stack.base + "/#verify=" + "x" * 201)
        expect(landing.locator("#message")).to_have_text(
            "This verification link does not work any more: it was used, it expired, or a "
            "newer one replaced it. Sign in to have a new one sent.")
        reset = opened(context, stack.base + "/#reset=" + "x" * 201)
        reset.fill("#reset-form [name=new_password]", NEW)
        reset.fill("#reset-form [name=again]", NEW)
        reset.click("#reset-form button")
        expect(reset.locator("#message")).to_contain_text("This reset link does not work any more")
