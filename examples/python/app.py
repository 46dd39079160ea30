"""A Python (plain WSGI) backend that signs users in through ssogate and
protects a route. Needs PyJWT with cryptography (Debian: python3-jwt)."""
import json, os, secrets, urllib.error, urllib.request
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlparse
from wsgiref.simple_server import make_server

import jwt

SSOGATE = os.environ.get("SSOGATE_URL", "http://127.0.0.1:8080")  # ssogate's HTTP listener
API_KEY = os.environ["SSOGATE_API_KEY"]  # scope "login"
ISSUER = os.environ.get("SSOGATE_ISSUER", SSOGATE)
AUDIENCE = os.environ.get("SSOGATE_AUDIENCE", SSOGATE)
APP = os.environ.get("APP_URL", "http://127.0.0.1:5000")  # this backend, as browsers reach it
CONNECTION = os.environ.get("SSOGATE_CONNECTION", "dev")
jwks = jwt.PyJWKClient(SSOGATE + "/.well-known/jwks.json")


def call(path, body):
    """POSTs JSON to ssogate's REST API; errors carry a machine-readable reason."""
    req = urllib.request.Request(SSOGATE + path, json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)
    except urllib.error.HTTPError as err:
        e = json.load(err)
        raise RuntimeError(f"{path}: {e['status']} {e['details'][0]['reason']}: {e['message']}") from None


def verify(token):
    """Offline: signature with the JWKS key of the token's kid (a key object admits
    only its own algorithm family), typ, iss, aud, exp; then online with
    ValidateToken, which sees revocation at once."""
    key = jwks.get_signing_key_from_jwt(token)
    if jwt.get_unverified_header(token).get("typ") != "at+jwt":
        raise jwt.InvalidTokenError("typ is not at+jwt")
    claims = jwt.decode(token, key.key, algorithms=["ES256", "EdDSA", "RS256"], audience=AUDIENCE,
                        issuer=ISSUER, leeway=30, options={"require": ["exp", "sub"]})
    check = call("/v1/tokens:validate", {"accessToken": token})
    if not check["valid"]:
        raise jwt.InvalidTokenError("token " + check["reason"])
    return claims


def app(environ, start_response):
    path, query = environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))
    cookies = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    reply = lambda status, body, *headers: (start_response(status, [("Content-Type", "application/json"), *headers]), [json.dumps(body).encode()])[1]
    if path == "/login":
        state = secrets.token_urlsafe(16)
        start = call("/v1/login:start", {"connectionId": CONNECTION, "returnTo": APP + "/callback", "state": state})
        return reply("303 See Other", {}, ("Location", start["redirectUrl"]),
                     ("Set-Cookie", f"state={state}; HttpOnly; SameSite=Lax; Path=/callback"))
    if path == "/callback":
        res = call("/v1/login:exchangeCode", {"code": query.get("code", [""])[0]})
        if not res["state"] or "state" not in cookies or res["state"] != cookies["state"].value:
            return reply("400 Bad Request", {"error": "state mismatch: start again at /login"})
        return reply("303 See Other", {}, ("Location", "/api/me"),
                     ("Set-Cookie", f"token={res['tokenSet']['accessToken']}; HttpOnly; SameSite=Lax; Path=/"))
    if path == "/api/me":
        auth = environ.get("HTTP_AUTHORIZATION", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else cookies["token"].value if "token" in cookies else ""
        if not token:
            return reply("401 Unauthorized", {"error": "missing token"}, ("WWW-Authenticate", 'Bearer realm="app"'))
        try:
            claims = verify(token)
        except (jwt.PyJWTError, RuntimeError) as err:
            return reply("401 Unauthorized", {"error": "invalid_token", "reason": str(err)},
                         ("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{err}"'))
        return reply("200 OK", {k: claims.get(k) for k in ("sub", "tenant", "email", "roles")})
    return reply("404 Not Found", {"error": "not found"})


if __name__ == "__main__":
    port = urlparse(APP).port or 5000
    print("listening on", APP, flush=True)
    make_server("127.0.0.1", port, app).serve_forever()
