#!/usr/bin/env python3
"""Make an RS256 key pair, its JWKS and a signed token for the JWT benchmark (stdlib + openssl).

usage: jwt.py DIR  -> writes DIR/jwt-key.pem and DIR/jwks.json, prints the token (valid 1 day).
"""

import base64
import json
import os
import subprocess
import sys
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    out = sys.argv[1]
    key = os.path.join(out, "jwt-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key], check=True, capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                      "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}]}
    with open(os.path.join(out, "jwks.json"), "w") as f:
        json.dump(jwks, f)
    now = int(time.time())
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
    claims = b64url(json.dumps({"iss": "https://bench/", "aud": "bench", "sub": "bench-user",
                                "scope": "bench:read", "iat": now, "exp": now + 86400}).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         check=True, capture_output=True).stdout
    print(f"{header}.{claims}.{b64url(sig)}")


if __name__ == "__main__":
    main()
