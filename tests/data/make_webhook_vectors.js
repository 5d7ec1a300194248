// Make webhook test vectors with Node's built-in crypto, independently of the Python SDK.
//
// Usage: node tests/data/make_webhook_vectors.js > tests/data/webhook_vectors.json
//
// Contract (akool-api.md 5.4-5.5): dataEncrypt = base64(AES-CBC-PKCS7(key = clientSecret as
// UTF-8, 16/24/32 bytes; iv = first 16 bytes of clientId as UTF-8, zero-padded)); signature =
// sha1 hex of the four strings [clientId, timestamp, nonce, dataEncrypt] sorted and joined.
"use strict";
const crypto = require("crypto");

function iv(clientId) {
  const out = Buffer.alloc(16); // zero-filled: a short clientId is zero-padded
  Buffer.from(clientId, "utf8").copy(out, 0, 0, 16);
  return out;
}

function vector(name, clientId, secret, timestamp, nonce, plaintext) {
  const key = Buffer.from(secret, "utf8");
  const cipher = crypto.createCipheriv(`aes-${key.length * 8}-cbc`, key, iv(clientId));
  const dataEncrypt = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]).toString(
    "base64",
  );
  const parts = [clientId, String(timestamp), String(nonce), dataEncrypt].sort();
  const signature = crypto.createHash("sha1").update(parts.join(""), "utf8").digest("hex");
  return {
    name,
    clientId,
    clientSecret: secret,
    timestamp,
    nonce,
    plaintext,
    iv: iv(clientId).toString("hex"),
    dataEncrypt,
    signature,
  };
}

const event = (id, status, url) =>
  JSON.stringify({ _id: id, status, type: "character swap", url });

const vectors = [
  vector(
    "akool-api section 5.6",
    "0123456789abcdef01234567",
    "abcdefghijklmnopqrstuvwx",
    1710757981609,
    "1529",
    '{"_id":"689174694b4dbdd4ab3d28c9","status":3,"type":"video","url":"https://example.com/out.mp4"}',
  ),
  vector(
    "AES-128, numeric nonce",
    "64db241f6d9e5c4bd1000001",
    "sixteen-byte-key",
    1750000000000,
    4711,
    event("68a0c0ffee0000000000abcd", 3, "http://127.0.0.1:8080/files/x.mp4"),
  ),
  vector(
    "AES-192, failed task",
    "AKclientIdForTests0042==",
    "S3cr3t-Key-For-Tests-24b",
    1750000000123,
    "0001",
    event("68a0c0ffee0000000000abce", 4, ""),
  ),
  vector(
    "AES-256, processing event",
    "AKDt8rWEczpYPzCGur2xE=",
    "nmwUjMAK0PJpl0MOiXLOOOwZADm0gkLo",
    1699999999999,
    "9999",
    event("68a0c0ffee0000000000abcf", 2, ""),
  ),
  vector(
    "short clientId (zero-padded IV)",
    "short-id",
    "abcdefghijklmnopqrstuvwx",
    1710757981609,
    "42",
    event("000000000000000000000001", 3, "https://example.com/a.mp4"),
  ),
  vector(
    "plaintext of exactly two blocks (a whole padding block)",
    "0123456789abcdef01234567",
    "abcdefghijklmnop",
    1710757981610,
    "1",
    '{"_id":"abcdefghijk","status":3}',
  ),
  vector(
    "non-ASCII plaintext",
    "0123456789abcdef01234567",
    "abcdefghijklmnopqrstuvwxyz012345",
    1710757981611,
    "zzzz",
    JSON.stringify({ _id: "689174694b4dbdd4ab3d28d0", status: 3, type: "héad swap ✓", url: "https://example.com/é.mp4" }),
  ),
  vector(
    "sort order: clientId sorts after the ciphertext",
    "zzzzzzzzzzzzzzzzzzzzzzzz",
    "abcdefghijklmnopqrstuvwx",
    1,
    "A",
    event("689174694b4dbdd4ab3d28d1", 3, "https://example.com/b.mp4"),
  ),
];

process.stdout.write(JSON.stringify({ generator: `node ${process.version} crypto`, vectors }, null, 2) + "\n");
