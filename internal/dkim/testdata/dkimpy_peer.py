#!/usr/bin/env python3
"""Interoperability peer for the Go DKIM tests: dkimpy (Debian python3-dkim).

Reads a JSON list of jobs on standard input and writes a JSON list of
results, one per job, so that one Python process serves a whole test.

  {"op": "sign", "msg": B64, "key": B64, "domain": D, "selector": S,
   "canon": "relaxed/simple", "alg": "rsa-sha256" | "ed25519-sha256",
   "headers": ["from", ...] or null}
      -> {"field": B64 of the DKIM-Signature field, CRLF-terminated}
  {"op": "verify", "msg": B64, "records": {"name": "TXT value", ...}}
      -> {"ok": true | false, "error": str}

Keys: PEM for RSA; for Ed25519 the base64 of the 32-octet seed, as dkimpy
wants it.
"""
import base64
import json
import sys

import dkim


def b64d(s):
    return base64.b64decode(s)


def do_sign(job):
    hc, bc = job["canon"].split("/")
    kwargs = {}
    if job.get("headers"):
        kwargs["include_headers"] = [h.encode() for h in job["headers"]]
    key = b64d(job["key"])
    sig = dkim.sign(
        b64d(job["msg"]),
        job["selector"].encode(),
        job["domain"].encode(),
        key,
        canonicalize=(hc.encode(), bc.encode()),
        signature_algorithm=job["alg"].encode(),
        linesep=b"\r\n",
        **kwargs,
    )
    return {"field": base64.b64encode(sig).decode()}


def do_verify(job):
    records = job["records"]

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip("."), "").encode()

    d = dkim.DKIM(b64d(job["msg"]), minkey=1024)
    try:
        ok = d.verify(dnsfunc=dnsfunc)
        return {"ok": bool(ok), "error": ""}
    except Exception as e:  # dkimpy raises for malformed input
        return {"ok": False, "error": repr(e)}


def main():
    jobs = json.load(sys.stdin)
    out = []
    for job in jobs:
        try:
            if job["op"] == "sign":
                out.append(do_sign(job))
            else:
                out.append(do_verify(job))
        except Exception as e:
            out.append({"error": repr(e)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
