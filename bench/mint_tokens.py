#!/usr/bin/env python3
"""Mints what the load scripts need, through the servers' real endpoints (loopback only, stdlib only).

Usage: mint_tokens.py {portcullis|oidc} BASE_URL N OUT_DIR

Registers one public client (RFC 7591, token_endpoint_auth_method=none), then runs N authorization-code flows
with PKCE (RFC 7636, S256) and the resource indicator (RFC 8707) for BASE_URL/mcp, and writes to OUT_DIR:
  client_id     the client
  refresh.txt   N refresh tokens, one per line (one per wrk connection, each chained by refresh.lua)
  access.txt    one access token (JWT) for the MCP and revocation runs
  endpoints.env TOKEN_PATH, REGISTER_PATH, REVOKE_PATH from the metadata (sourced by run.sh)

Portcullis: the real login and consent forms (env BENCH_USER / BENCH_PASSWORD), cookies kept, so only the
first flow logs in. oidc-provider: bench/oidc/server.mjs auto-approves its interactions, so following the
redirects is enough.
"""

import base64
import hashlib
import html.parser
import http.cookiejar
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

REDIRECT = "http://127.0.0.1:9/callback"


class Forms(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms, self._cur = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action") or "", "inputs": [], "buttons": []}
            self.forms.append(self._cur)
        elif self._cur is not None and tag in ("input", "button") and a.get("name"):
            kind = (a.get("type") or ("submit" if tag == "button" else "text")).lower()
            key = "buttons" if kind == "submit" else "inputs"
            self._cur[key].append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    kind, base, n, out = sys.argv[1], sys.argv[2].rstrip("/"), int(sys.argv[3]), sys.argv[4]
    if urllib.parse.urlsplit(base).hostname not in ("127.0.0.1", "localhost"):
        sys.exit("loopback only")
    origin = base
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
    )

    def call(url, data=None, json_body=None):
        headers = {}
        body = None
        if json_body is not None:
            body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if kind == "portcullis":  # its form POSTs want Origin; oidc-provider would treat it as CORS
                headers["Origin"] = origin
        req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
        try:
            r = opener.open(req, timeout=30)
            return r.status, r.headers.get("Location"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Location"), e.read().decode()

    meta = json.loads(call(base + "/.well-known/oauth-authorization-server")[2])
    resource = base + "/mcp"
    status, _, body = call(
        meta["registration_endpoint"],
        json_body={
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
            "client_name": "bench",
        },
    )
    if status != 201:
        sys.exit(f"registration failed: {status} {body[:300]}")
    client_id = json.loads(body)["client_id"]

    def authorize():
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        q = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "mcp:tools",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        }
        url, data = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode(q), None
        for _ in range(12):
            status, location, body = call(url, data)
            data = None
            if status in (302, 303) and location:
                nxt = urllib.parse.urljoin(url, location)
                if nxt.startswith(REDIRECT):
                    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(nxt).query))
                    if "code" not in params:
                        sys.exit(f"authorization failed: {params}")
                    return params["code"], verifier
                url = nxt
                continue
            if kind != "portcullis" or status != 200:
                sys.exit(f"unexpected page at {url}: {status} {body[:300]}")
            p = Forms()
            p.feed(body)
            form = next((f for f in p.forms if f["action"].split("?")[0].endswith(("/login", "/consent"))), None)
            if form is None:
                sys.exit(f"no login or consent form at {url}: {body[:300]}")
            fields = [(k, v) for k, v in form["inputs"] if k not in ("username", "password")]
            if form["action"].split("?")[0].endswith("/login"):
                fields += [("username", os.environ["BENCH_USER"]), ("password", os.environ["BENCH_PASSWORD"])]
            else:
                fields += [("decision", "approve")]
            url, data = urllib.parse.urljoin(url, form["action"]), fields
        sys.exit("too many steps in the authorization flow")

    refresh, access = [], None
    for _ in range(n):
        code, verifier = authorize()
        status, _, body = call(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": resource,
            },
        )
        if status != 200:
            sys.exit(f"code exchange failed: {status} {body[:300]}")
        t = json.loads(body)
        if "refresh_token" not in t:
            sys.exit(f"no refresh token issued: {body[:300]}")
        refresh.append(t["refresh_token"])
        access = t["access_token"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "client_id"), "w") as f:
        f.write(client_id)
    with open(os.path.join(out, "refresh.txt"), "w") as f:
        f.write("\n".join(refresh) + "\n")
    with open(os.path.join(out, "access.txt"), "w") as f:
        f.write(access)
    with open(os.path.join(out, "endpoints.env"), "w") as f:
        for name, key in (("TOKEN", "token_endpoint"), ("REGISTER", "registration_endpoint"), ("REVOKE", "revocation_endpoint")):
            f.write(f"{name}_PATH={urllib.parse.urlsplit(meta[key]).path}\n")
    print(f"minted {n} refresh tokens and an access token for client {client_id}")


if __name__ == "__main__":
    main()
