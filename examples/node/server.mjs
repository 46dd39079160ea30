// A Node backend that signs users in through ssogate and protects a route.
// npm install express jose; then see the README's "Protect your routes".
import express from "express";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { randomBytes } from "node:crypto";

const env = (name, fallback) => process.env[name] ?? fallback;
const SSOGATE = env("SSOGATE_URL", "http://127.0.0.1:8080"); // ssogate's HTTP listener
const API_KEY = env("SSOGATE_API_KEY"); // scope "login"
const ISSUER = env("SSOGATE_ISSUER", SSOGATE);
const AUDIENCE = env("SSOGATE_AUDIENCE", SSOGATE);
const APP = env("APP_URL", "http://127.0.0.1:3000"); // this backend, as browsers reach it
const CONNECTION = env("SSOGATE_CONNECTION", "dev");

// ssogate's REST API: POST JSON with the API key; errors carry a reason.
async function call(path, body) {
  const res = await fetch(SSOGATE + path, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${json.status} ${json.details?.[0]?.reason}: ${json.message}`);
  return json;
}

const jwks = createRemoteJWKSet(new URL(SSOGATE + "/.well-known/jwks.json"));

// requireUser verifies the access token offline (signature, typ, iss, aud,
// exp), then online with ValidateToken, which sees revocation at once.
async function requireUser(req, res, next) {
  const token = req.get("authorization")?.match(/^Bearer (.+)$/i)?.[1] ?? cookie(req, "token");
  if (!token) return res.status(401).set("WWW-Authenticate", 'Bearer realm="app"').json({ error: "missing token" });
  try {
    const { payload } = await jwtVerify(token, jwks, { issuer: ISSUER, audience: AUDIENCE, typ: "at+jwt" });
    const check = await call("/v1/tokens:validate", { accessToken: token });
    if (!check.valid) throw new Error(`token ${check.reason}`);
    req.user = payload;
    next();
  } catch (err) {
    res.status(401).set("WWW-Authenticate", `Bearer error="invalid_token", error_description="${err.code ?? err.message}"`)
      .json({ error: "invalid_token", reason: err.code ?? err.message });
  }
}

const cookie = (req, name) => req.get("cookie")?.match(new RegExp(`(?:^|; )${name}=([^;]+)`))?.[1];
const app = express();

app.get("/login", async (req, res, next) => {
  try {
    const state = randomBytes(16).toString("base64url");
    const start = await call("/v1/login:start", { connectionId: CONNECTION, returnTo: APP + "/callback", state });
    res.set("Set-Cookie", `state=${state}; HttpOnly; SameSite=Lax; Path=/callback`).redirect(303, start.redirectUrl);
  } catch (err) { next(err); }
});

app.get("/callback", async (req, res, next) => {
  try {
    const { tokenSet, state } = await call("/v1/login:exchangeCode", { code: String(req.query.code) });
    if (!state || state !== cookie(req, "state")) return res.status(400).send("state mismatch: start again at /login");
    res.set("Set-Cookie", `token=${tokenSet.accessToken}; HttpOnly; SameSite=Lax; Path=/`).redirect(303, "/api/me");
  } catch (err) { next(err); }
});

app.get("/api/me", requireUser, (req, res) => {
  res.json({ sub: req.user.sub, tenant: req.user.tenant, email: req.user.email, roles: req.user.roles });
});

const port = Number(new URL(APP).port || 3000);
app.listen(port, "127.0.0.1", () => console.log(`listening on ${APP}`));
