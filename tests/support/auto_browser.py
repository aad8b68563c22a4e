#!/usr/bin/env python3
"""A headless "browser" for tests, used as $BROWSER: logs in and approves (or denies) a Portcullis authorization.

Usage: auto_browser.py AUTHORIZATION_URL

Reads PORTCULLIS_TEST_USER and PORTCULLIS_TEST_PASSWORD, and PORTCULLIS_TEST_DECISION (approve, the default, or
deny). It GETs the authorization URL, submits every input of the login form (<form action="/login">), then the
consent form with decision=approve|deny, keeping cookies throughout, and finally GETs the redirect Location (the
client's loopback callback) so the waiting client receives the code. Redirects are followed by hand and only to
loopback hosts. Exits 0 on success; otherwise prints why on stderr and exits 1. Python 3.11 standard library only.

With PORTCULLIS_TEST_MODE=redirect (for authorization servers that approve by themselves, like the MCP TypeScript
SDK's demo provider) no credentials are needed: it only follows the loopback redirects from the authorization URL to
the client's callback, and fails if it meets a page instead. The default mode is PORTCULLIS_TEST_MODE=forms.

Federated sign-in (issue 13): with PORTCULLIS_TEST_IDP=<provider name> (forms mode), on Portcullis's sign-in page it
follows the "Continue with ..." link whose href contains /idp/<name>/start instead of submitting the password form,
then at the identity provider (the test IdP, interop/idp/idp.mjs) fills its login form (#login =
PORTCULLIS_TEST_USER, #password = PORTCULLIS_TEST_PASSWORD) and its consent form (#allow, or #deny with
PORTCULLIS_TEST_IDP_DECISION=deny), follows the redirects back through Portcullis's /idp/<name>/callback (loopback
only, like everything else), and then answers Portcullis's consent page with PORTCULLIS_TEST_DECISION as usual.
"""

import html.parser
import http.cookiejar
import ipaddress
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class Form:
    def __init__(self, action, method):
        self.action = action
        self.method = method
        self.inputs = []  # (name, value)
        self.buttons = []  # (name, value)
        self.ids = set()  # the id attributes of its inputs and buttons


class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.links = []  # the href of every <a>
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if self._current is not None and tag in ("input", "button") and a.get("id"):
            self._current.ids.add(a["id"])
        if tag == "form":
            self._current = Form(a.get("action") or "", (a.get("method") or "get").lower())
            self.forms.append(self._current)
        elif self._current is not None and tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind == "submit":
                self._current.buttons.append((a["name"], a.get("value") or ""))
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._current.inputs.append((a["name"], a.get("value") or "on"))
            else:
                self._current.inputs.append((a["name"], a.get("value") or ""))
        elif self._current is not None and tag == "button" and a.get("name"):
            if (a.get("type") or "submit").lower() == "submit":
                self._current.buttons.append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def fail(message):
    print(f"auto_browser: {message}", file=sys.stderr)
    sys.exit(1)


def is_loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main():
    if len(sys.argv) != 2:
        fail("usage: auto_browser.py AUTHORIZATION_URL")
    start = sys.argv[1]
    user = os.environ.get("PORTCULLIS_TEST_USER")
    password = os.environ.get("PORTCULLIS_TEST_PASSWORD")
    decision = os.environ.get("PORTCULLIS_TEST_DECISION", "approve")
    mode = os.environ.get("PORTCULLIS_TEST_MODE", "forms")
    idp = os.environ.get("PORTCULLIS_TEST_IDP") or None
    idp_decision = os.environ.get("PORTCULLIS_TEST_IDP_DECISION", "allow")
    if mode not in ("forms", "redirect"):
        fail("PORTCULLIS_TEST_MODE must be forms or redirect")
    if mode == "forms" and (not user or password is None):
        fail("set PORTCULLIS_TEST_USER and PORTCULLIS_TEST_PASSWORD")
    if decision not in ("approve", "deny"):
        fail("PORTCULLIS_TEST_DECISION must be approve or deny")
    if idp_decision not in ("allow", "deny"):
        fail("PORTCULLIS_TEST_IDP_DECISION must be allow or deny")
    if idp is not None and mode != "forms":
        fail("PORTCULLIS_TEST_IDP needs PORTCULLIS_TEST_MODE=forms")
    if not is_loopback(start):
        fail(f"refusing a non-loopback authorization URL: {start}")

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())

    def request(url, data=None):
        """One request without following redirects: (status, location, body, final url)."""
        if not is_loopback(url):
            fail(f"refusing to go to a non-loopback URL: {url}")
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method="POST" if data is not None else "GET")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
            origin = urllib.parse.urlsplit(url)
            req.add_header("Origin", f"{origin.scheme}://{origin.netloc}")
        try:
            resp = opener.open(req, timeout=30)
            return resp.status, resp.headers.get("Location"), resp.read().decode("utf-8", "replace"), url
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Location"), e.read().decode("utf-8", "replace"), url

    def follow(url, data=None):
        """Follows redirects (loopback only) until a page; returns (status, body, url) or the callback URL."""
        for _ in range(10):
            status, location, body, url = request(url, data)
            data = None
            if status in (301, 302, 303, 307, 308) and location:
                nxt = urllib.parse.urljoin(url, location)
                if "code=" in nxt or "error=" in nxt:
                    path = urllib.parse.urlsplit(nxt).path
                    # Federated: the IdP's answer goes to Portcullis's /idp/<name>/callback, which is followed.
                    theirs = idp is not None and path.endswith(f"/idp/{idp}/callback")
                    if path.endswith("/callback") and not theirs:
                        return ("callback", nxt)
                url = nxt
                continue
            return ("page", status, body, url)
        fail("too many redirects")

    def form_on(page, action):
        parser = FormParser()
        parser.feed(page)
        for f in parser.forms:
            if f.action.split("?")[0].endswith(action):
                return f
        return None

    def federated_step(page, url):
        """The next request at a federated sign-in page: (url, form data or None), or None for Portcullis's own."""
        parser = FormParser()
        parser.feed(page)
        for f in parser.forms:
            action = urllib.parse.urljoin(url, f.action)
            if {"login", "password"} <= f.ids:  # the IdP's login form
                if 'id="error"' in page:
                    fail(f"the identity provider refused the login at {url}: {page[:600]!r}")
                fields = [(k, v) for k, v in f.inputs if k not in ("login", "password")]
                return action, fields + [("login", user), ("password", password)]
            if "allow" in f.ids:  # the IdP's consent form
                return action, list(f.inputs) + [("decision", idp_decision)]
        for href in parser.links:
            if f"/idp/{idp}/start" in urllib.parse.urlsplit(href).path:
                return urllib.parse.urljoin(url, href), None
        return None

    result = follow(start)
    if mode == "redirect" and result[0] != "callback":
        _, status, body, url = result
        fail(f"expected a redirect to the client's callback, got a page at {url} (HTTP {status}): {body[:300]!r}")
    for _ in range(3 if idp is None else 8):
        if result[0] == "callback":
            break
        _, status, body, url = result
        if idp is not None:
            step = federated_step(body, url)
            if step is not None:
                result = follow(*step)
                continue
        login = form_on(body, "/login")
        consent = form_on(body, "/consent")
        if idp is not None and login is not None:
            fail(f"no 'Continue with' link to /idp/{idp}/start on the sign-in page at {url}")
        if login is not None:
            fields = [(k, v) for k, v in login.inputs if k not in ("username", "password")]
            fields += [("username", user), ("password", password)]
            result = follow(urllib.parse.urljoin(url, login.action), fields)
        elif consent is not None:
            values = [v for k, v in consent.buttons if k == "decision"]
            if decision not in values:
                fail(f"the consent form has no {decision} button")
            fields = list(consent.inputs) + [("decision", decision)]
            result = follow(urllib.parse.urljoin(url, consent.action), fields)
        else:
            fail(f"no login or consent form at {url} (HTTP {status}): {body[:300]!r}")
    if result[0] != "callback":
        fail("the authorization did not end in a redirect to the client")
    callback = result[1]
    if not is_loopback(callback):
        fail(f"refusing a non-loopback callback: {callback}")
    try:
        with urllib.request.urlopen(callback, timeout=30) as resp:
            resp.read()
    except urllib.error.URLError as e:
        fail(f"could not deliver the callback {callback}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
