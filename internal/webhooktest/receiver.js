// A webhook receiver that checks every delivery with the npm
// standardwebhooks package (an independent implementation of the spec).
// Control: POST /_config {secret, fail_first, hang_first}; GET /_log.
const http = require("http");
const { Webhook } = require("standardwebhooks");

let cfg = { secret: "", fail_first: 0, hang_first: 0 };
// With SCHEMA set, every verified payload is also checked against that
// JSON Schema (ajv, draft 2020-12).
let validate = null;
if (process.env.SCHEMA) {
  const Ajv2020 = require("ajv/dist/2020");
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  validate = ajv.compile(JSON.parse(require("fs").readFileSync(process.env.SCHEMA, "utf8")));
}
let n = 0;
const log = [];
const inflight = new Map(); // webhook-id -> requests in flight

function body(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

http
  .createServer(async (req, res) => {
    const raw = await body(req);
    if (req.url === "/_config") {
      cfg = Object.assign(cfg, JSON.parse(raw));
      res.end("ok");
      return;
    }
    if (req.url === "/_log") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(log));
      return;
    }
    const id = req.headers["webhook-id"] || "";
    const overlap = (inflight.get(id) || 0) > 0;
    inflight.set(id, (inflight.get(id) || 0) + 1);
    const i = n++;
    const rec = { n: i, id, timestamp: req.headers["webhook-timestamp"], overlap, verified: false, error: "", status: 0, start: Date.now() };
    try {
      rec.event = new Webhook(cfg.secret).verify(raw, {
        "webhook-id": req.headers["webhook-id"],
        "webhook-timestamp": req.headers["webhook-timestamp"],
        "webhook-signature": req.headers["webhook-signature"],
      });
      rec.verified = true;
      if (validate && !validate(rec.event)) rec.schema_error = JSON.stringify(validate.errors);
    } catch (e) {
      rec.error = String(e && e.message ? e.message : e);
    }
    const finish = (status) => {
      inflight.set(id, inflight.get(id) - 1);
      rec.status = status;
      rec.end = Date.now();
      log.push(rec);
      res.statusCode = status;
      res.end();
    };
    if (i < cfg.hang_first) {
      // Never answers; the sender's timeout or death ends it.
      res.on("close", () => { inflight.set(id, inflight.get(id) - 1); rec.status = -1; rec.end = Date.now(); log.push(rec); });
      return;
    }
    if (!rec.verified) return finish(400);
    if (i < cfg.fail_first) return finish(500);
    // A little work, so that concurrent duplicates would overlap.
    setTimeout(() => finish(200), 20);
  })
  .listen(0, "127.0.0.1", function () {
    process.stdout.write(JSON.stringify({ port: this.address().port }) + "\n");
  });
