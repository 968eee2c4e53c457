#!/usr/bin/env python3
"""An independent verifier of clinicflow's sealed documents (shared/platform/src/sealing.rs).

It shares no code with the issuer: Base45 (RFC 9285) is decoded here, CBOR by cbor2, and
the ES256 signature over the COSE_Sign1 Sig_structure (RFC 9052 §4.4) is checked by
`cryptography`, with the public key taken from the JWK that `GET .../key` serves.

Input (stdin, JSON): {"payload": "CF1:...", "jwk": {...}, "now": <unix seconds>}
Output (stdout, JSON): {"valid": true, "expired": false, "claims": {...}}
                    or {"valid": false, "reason": "..."}
With "payloads": [...] instead of "payload", a list of those answers, one per payload.
"""

import base64
import json
import sys
from collections.abc import Mapping

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
ES256 = -7
CWT = {1: "iss", 2: "sub", 4: "exp", 6: "iat", 7: "cti"}


def b45decode(text):
    values = []
    for ch in text:
        i = ALPHABET.find(ch)
        if i < 0:
            raise ValueError("not Base45")
        values.append(i)
    out = bytearray()
    for k in range(0, len(values), 3):
        chunk = values[k:k + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 45 * 45
            if n > 0xFFFF:
                raise ValueError("not Base45")
            out += bytes([n >> 8, n & 0xFF])
        elif len(chunk) == 2:
            n = chunk[0] + chunk[1] * 45
            if n > 0xFF:
                raise ValueError("not Base45")
            out.append(n)
        else:
            raise ValueError("not Base45")
    return bytes(out)


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(payload, jwk, now):
    if not payload.startswith("CF1:"):
        return {"valid": False, "reason": "not a sealed document"}
    try:
        raw = cbor2.loads(b45decode(payload[4:]))
    except Exception as e:  # noqa: BLE001 - any decoding failure is a rejection
        return {"valid": False, "reason": f"malformed: {e}"}
    if isinstance(raw, cbor2.CBORTag):
        if raw.tag != 18:
            return {"valid": False, "reason": "not a COSE_Sign1"}
        raw = raw.value
    if not (isinstance(raw, (list, tuple)) and len(raw) == 4):
        return {"valid": False, "reason": "not a COSE_Sign1"}
    protected_bytes, _unprotected, body, signature = raw
    try:
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
    except Exception:  # noqa: BLE001
        return {"valid": False, "reason": "malformed protected header"}
    if not isinstance(protected, Mapping) or protected.get(1) != ES256:
        return {"valid": False, "reason": "not ES256"}
    if protected.get(4) != b64url(jwk["kid"]):
        return {"valid": False, "reason": "unknown key"}
    if not (isinstance(signature, bytes) and len(signature) == 64 and isinstance(body, bytes)):
        return {"valid": False, "reason": "malformed signature"}
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url(jwk["x"]), "big"), int.from_bytes(b64url(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    to_be_signed = cbor2.dumps(["Signature1", protected_bytes, b"", body])
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return {"valid": False, "reason": "bad signature"}
    payload = cbor2.loads(body)
    if not isinstance(payload, Mapping):
        return {"valid": False, "reason": "malformed claims"}
    claims = {}
    for name, value in payload.items():
        name = CWT.get(name, name)
        claims[str(name)] = value.decode() if isinstance(value, bytes) else value
    return {"valid": True, "expired": now >= claims["exp"], "claims": claims}


if __name__ == "__main__":
    request = json.load(sys.stdin)
    jwk, now = request["jwk"], request["now"]
    if "payloads" in request:
        answer = [verify(p, jwk, now) for p in request["payloads"]]
    else:
        answer = verify(request["payload"], jwk, now)
    json.dump(answer, sys.stdout, ensure_ascii=False)
