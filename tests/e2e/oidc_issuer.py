"""A local OpenID Connect issuer for the trusted-publishing tests.

`Issuer()` serves, on a free loopback port (plain http, so the server under test needs
`allow_insecure_loopback`):

- `/.well-known/openid-configuration`: `{"issuer": url, "jwks_uri": url + "/jwks", ...}`
- `/jwks`: the public halves of the *published* signing keys

and signs ID tokens with `sign(claims, kid=..., key=..., headers=...)`. Keys can be added,
published, withdrawn (rotation), or generated and kept unpublished (`unpublished_key()`), so a
test can sign with a key id the JWKS does not list ("unknown key") or with a different private
key under a published key id ("bad signature"). Requests are counted per path, with the time of
the last one, so a test can tell whether (and when) the server fetched the keys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"


def generate_key(alg: str = "ES256"):
    """A fresh private key for `alg` (ES256: P-256; RS256: RSA 2048)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported algorithm {alg!r}")


def public_jwk(key, kid: str, alg: str) -> dict:
    algorithm = ECAlgorithm if alg == "ES256" else RSAAlgorithm
    jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


class Issuer:
    """An OIDC issuer on 127.0.0.1 in a background thread. Call `close()` when done."""

    def __init__(self, alg: str = "ES256", name: str = "issuer"):
        self.alg = alg
        self.name = name
        self._lock = threading.Lock()
        self._keys: dict[str, object] = {}  # kid -> private key, published or not
        self._published: list[str] = []  # kids served in /jwks, in order
        self.requests: Counter[str] = Counter()  # path -> number of GET requests
        self.last_request_at: dict[str, float] = {}  # path -> time.monotonic() of the last one
        self.kid = self.add_key()  # the current (default) signing key

        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                with issuer._lock:
                    issuer.requests[path] += 1
                    issuer.last_request_at[path] = time.monotonic()
                if path == DISCOVERY_PATH:
                    body = issuer.discovery()
                elif path == JWKS_PATH:
                    body = issuer.jwks()
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"oidc-{name}", daemon=True)
        self._thread.start()

    # ---- what it serves ------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def discovery(self) -> dict:
        return {
            "issuer": self.url,
            "jwks_uri": self.url + JWKS_PATH,
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "repository", "job_workflow_ref"],
            "id_token_signing_alg_values_supported": [self.alg],
            "scopes_supported": ["openid"],
        }

    def jwks(self) -> dict:
        with self._lock:
            return {"keys": [public_jwk(self._keys[kid], kid, self.alg) for kid in self._published]}

    # ---- keys ----------------------------------------------------------------------

    def add_key(self, kid: str | None = None, *, publish: bool = True) -> str:
        """Generates a key, publishes it in the JWKS unless told not to, and returns its kid."""
        kid = kid or f"{self.name}-{uuid.uuid4().hex[:12]}"
        key = generate_key(self.alg)
        with self._lock:
            self._keys[kid] = key
            if publish:
                self._published.append(kid)
        return kid

    def publish(self, kid: str) -> None:
        with self._lock:
            if kid not in self._published:
                self._published.append(kid)

    def withdraw(self, kid: str) -> None:
        with self._lock:
            self._published.remove(kid)

    def rotate(self) -> str:
        """Publishes a new key and makes it the default signing key; the old one stays published."""
        self.kid = self.add_key()
        return self.kid

    def private_key(self, kid: str | None = None):
        """The private key registered under `kid` (default: the current signing key)."""
        with self._lock:
            return self._keys[kid or self.kid]

    def unpublished_key(self):
        """A private key of the right type that the JWKS never lists."""
        return generate_key(self.alg)

    def published_kids(self) -> list[str]:
        with self._lock:
            return list(self._published)

    # ---- tokens --------------------------------------------------------------------

    def sign(self, claims: dict, *, kid: str | None = None, key=None, headers: dict | None = None) -> str:
        """A compact JWS of `claims`. `kid` names the key in the header (default: the current
        key); `key` signs instead of the private key registered under `kid` (to forge)."""
        kid = kid or self.kid
        if key is None:
            with self._lock:
                key = self._keys[kid]
        hdr = {"kid": kid, "typ": "JWT"}
        hdr.update(headers or {})
        return jwt.encode(claims, key, algorithm=self.alg, headers=hdr)

    # ---- request accounting ----------------------------------------------------------

    @property
    def jwks_requests(self) -> int:
        with self._lock:
            return self.requests[JWKS_PATH]

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def seconds_since_jwks_fetch(self) -> float:
        """Seconds since the last `/jwks` request (infinity if there was none)."""
        with self._lock:
            at = self.last_request_at.get(JWKS_PATH)
        return float("inf") if at is None else time.monotonic() - at

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
