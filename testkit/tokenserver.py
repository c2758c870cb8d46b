"""A tiny Docker token server that distribution 2.8.2 trusts, for token-auth tests.

The registry is configured with ``auth.token`` (realm, service, issuer,
rootcertbundle). Clients that get a ``401 Bearer`` challenge ask this server
for a token (``GET /token?service=S&scope=repository:NAME:pull,push``) and
retry with ``Authorization: Bearer <jwt>``. The recipe, checked with 2.8.2:

- ES256 JWS; the header carries ``x5c`` = [the signing certificate, base64 DER]
  and that certificate is in the registry's ``rootcertbundle`` (a self-signed
  CA certificate is enough, no chain needed);
- claims ``iss``, ``aud`` (= service), ``sub``, ``exp``, ``nbf``, ``iat``, ``jti``
  and ``access`` = [{type, name, actions}];
- the signature is the raw ``r || s`` (32 + 32 bytes), not DER.

It supports Basic credentials (so a client's credential flow can be tested),
a configurable grant for anonymous requests, and it records every token
request so that tests can assert that a client caches its tokens per scope.
Only ``cryptography`` and the standard library are used.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

# Actions that an authenticated user gets by default; "*" is what registries use for "all".
ALL_ACTIONS: frozenset[str] = frozenset({"pull", "push", "delete", "*"})

TokenField = Literal["token", "access_token", "both"]


def _b64url(data: bytes) -> str:
    """JOSE base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Scope:
    """One parsed ``scope`` parameter: ``repository:NAME:pull,push``."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        # The name may contain ':' only for registry:catalog:* style scopes; split from both ends.
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise ValueError(f"malformed scope {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def normalise(cls, text: str) -> str:
        """Actions sorted and deduplicated: distribution lists them in no fixed order
        (``pull,push`` or ``push,pull``), so compare scopes in this form."""
        try:
            scope = cls.parse(text)
        except ValueError:
            return text
        return str(cls(scope.type, scope.name, tuple(sorted(set(scope.actions)))))


@dataclass(frozen=True)
class TokenRequest:
    """What a client asked for, as recorded by the server (for assertions in tests)."""

    user: str | None  # None: anonymous
    service: str | None
    scopes: tuple[str, ...]
    granted: bool  # False when the credentials were rejected (401)
    at: float


@dataclass
class SigningIdentity:
    """The token signing key and its self-signed CA certificate (the registry's root bundle)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def generate(cls, common_name: str = "gitops-gate test token issuer") -> SigningIdentity:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            # A CA certificate so Go's x509 accepts it as the root of its own one-element chain.
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign_jwt(self, claims: dict[str, object]) -> str:
        """An ES256 compact JWS with the certificate in ``x5c``; signature is raw r||s."""
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode("ascii")]}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@dataclass(eq=False)
class TokenServer:
    """A running token endpoint. Create it with :func:`start_token_server`.

    ``users`` maps user names to passwords; an authenticated user gets the
    requested actions intersected with ``user_actions``, an anonymous request
    gets them intersected with ``anonymous_actions`` (empty: anonymous gets a
    token with no access, which the registry then refuses, as real ones do).
    """

    service: str
    issuer: str
    identity: SigningIdentity
    users: dict[str, str] = field(default_factory=dict)
    anonymous_actions: frozenset[str] = frozenset({"pull"})
    user_actions: frozenset[str] = ALL_ACTIONS
    ttl_seconds: int = 300
    token_field: TokenField = "both"
    host: str = "127.0.0.1"
    port: int = 0
    _requests: list[TokenRequest] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _httpd: http.server.ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def realm(self) -> str:
        """The URL the registry names in its ``WWW-Authenticate`` challenge."""
        return f"http://{self.host}:{self.port}/token"

    # --- the record, for assertions ---------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, *, scope: str | None = None, user: str | Literal["any"] | None = "any") -> int:
        """Number of token requests, optionally only those naming ``scope`` / from ``user``.

        Scopes compare with their actions in any order (``pull,push`` = ``push,pull``);
        ``user=None`` counts anonymous requests.
        """
        wanted = None if scope is None else Scope.normalise(scope)
        return sum(
            1
            for r in self.requests
            if (wanted is None or wanted in {Scope.normalise(s) for s in r.scopes})
            and (user == "any" or r.user == user)
        )

    def reset(self) -> None:
        """Forget the recorded requests (after pushing fixtures, before the code under test)."""
        with self._lock:
            self._requests.clear()

    # --- issuing ----------------------------------------------------------------------------

    def grant(self, user: str | None, scopes: Iterable[Scope]) -> list[dict[str, object]]:
        """The ``access`` claim for a request: requested actions that this caller may have."""
        allowed = self.user_actions if user is not None else self.anonymous_actions
        access: list[dict[str, object]] = []
        for scope in scopes:
            actions = [a for a in scope.actions if a in allowed or "*" in allowed]
            if actions:
                access.append({"type": scope.type, "name": scope.name, "actions": actions})
        return access

    def issue(
        self,
        subject: str,
        access: list[dict[str, object]],
        *,
        ttl_seconds: int | None = None,
        audience: str | None = None,
        now: float | None = None,
    ) -> str:
        """Mint a token directly (tests can also mint expired or wrong-audience tokens)."""
        t = int(time.time() if now is None else now)
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service if audience is None else audience,
            "exp": t + ttl,
            "nbf": t - 1,
            "iat": t,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        return self.identity.sign_jwt(claims)

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(ok, user): no header is an anonymous success, bad credentials a failure."""
        if not header:
            return True, None
        kind, _, value = header.partition(" ")
        if kind.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            return False, None
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return False, user
        return True, user

    def handle(self, query: str, authorization: str | None) -> tuple[int, dict[str, object]]:
        """The endpoint's logic, without HTTP: (status, JSON body)."""
        params = urllib.parse.parse_qs(query)
        service = params.get("service", [None])[0]
        raw_scopes = [s for value in params.get("scope", []) for s in value.split(" ") if s]
        ok, user = self._authenticate(authorization)
        self._record(TokenRequest(user, service, tuple(raw_scopes), ok, time.time()))
        if not ok:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
        if service is not None and service != self.service:
            return 400, {"errors": [{"code": "DENIED", "message": f"unknown service {service}"}]}
        try:
            scopes = [Scope.parse(s) for s in raw_scopes]
        except ValueError as exc:
            return 400, {"errors": [{"code": "DENIED", "message": str(exc)}]}
        token = self.issue(user or "", self.grant(user, scopes))
        body: dict[str, object] = {
            "expires_in": self.ttl_seconds,
            "issued_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        if self.token_field in ("token", "both"):
            body["token"] = token
        if self.token_field in ("access_token", "both"):
            body["access_token"] = token
        return 200, body

    # --- lifecycle --------------------------------------------------------------------------

    def write_root_bundle(self, path: Path) -> Path:
        path.write_bytes(self.identity.cert_pem())
        return path

    def start(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
                    return
                status, body = server.handle(url.query, self.headers.get("Authorization"))
                self._reply(status, body)

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="gate-test-token"')
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output quiet; requests are recorded instead

        httpd = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        # A short poll interval: shutdown() waits for the loop's next poll (default 0.5 s).
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"token-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def start_token_server(
    *,
    service: str = "gate-test-registry",
    issuer: str = "gate-test-token-issuer",
    users: dict[str, str] | None = None,
    anonymous_actions: Iterable[str] = ("pull",),
    user_actions: Iterable[str] = ALL_ACTIONS,
    ttl_seconds: int = 300,
    token_field: TokenField = "both",
) -> TokenServer:
    """Start a token server on a free loopback port (port 0: the kernel picks, no race)."""
    server = TokenServer(
        service=service,
        issuer=issuer,
        identity=SigningIdentity.generate(),
        users=dict(users or {}),
        anonymous_actions=frozenset(anonymous_actions),
        user_actions=frozenset(user_actions),
        ttl_seconds=ttl_seconds,
        token_field=token_field,
    )
    server.start()
    return server
