"""A small OpenID Connect provider for the tests, built on Authlib's server side and served over
HTTP on localhost by werkzeug in a thread: discovery, an authorization endpoint (the authorization
code flow, PKCE with S256 required, nonce required), a token endpoint authenticating the client
by its secret, a JWKS endpoint, an end-session endpoint (RP-initiated logout), RS256 ID tokens and RS256 JWT access tokens (RFC 9068).

The person "signed in at the provider" is whoever the test names in ``Provider.signed_in``, so
the authorization endpoint answers at once with its redirect, as a provider does for someone who
already has a session there; with ``ask_to_continue`` it first shows a page with a button, as a
provider does when the person must sign in or consent. ``Provider.rotate_key()`` publishes a new signing key and signs with
it from then on (the old key stays in the JWKS, as providers do during a rotation)."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import OpenIDCode, UserInfo
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server

from riskrelay.devstack import free_port

API_AUDIENCE = "riskrelay-api"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "email", "profile"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class User:
    sub: str

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    user: User
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Provider:
    """The provider's state: its clients, people (claims by subject) and signing keys."""

    issuer: str = ""
    clients: dict[str, Client] = field(default_factory=dict)
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    signed_in: str | None = None
    ask_to_continue: bool = False
    keys: list[RSAKey] = field(default_factory=list)
    codes: dict[str, Code] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    sign_outs: list[dict[str, str]] = field(default_factory=list)

    def rotate_key(self) -> str:
        key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig"})
        self.keys.append(key)
        return str(key.kid)

    @property
    def signing_key(self) -> RSAKey:
        return self.keys[-1]

    def claims_of(self, subject: str) -> dict[str, Any]:
        return {"sub": subject, **self.people[subject]}


def build_app(provider: Provider) -> Flask:
    app = Flask("test-oidc-provider")
    server = AuthorizationServer(
        app,
        query_client=provider.clients.get,
        save_token=lambda token, request: None,
    )

    class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
            "client_secret_basic",
            "client_secret_post",
        ]

        def save_authorization_code(self, code: str, request: Any) -> None:
            payload = request.payload
            provider.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=payload.redirect_uri,
                scope=payload.scope,
                nonce=payload.data.get("nonce"),
                user=request.user,
                code_challenge=payload.data.get("code_challenge"),
                code_challenge_method=payload.data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = provider.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> User:
            return authorization_code.user

    class IdTokens(OpenIDCode):  # type: ignore[misc]
        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return provider.signing_key

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            return {
                "iss": provider.issuer,
                "aud": [client.client_id],
                "exp": int(time.time()) + 600,
            }

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": str(provider.signing_key.kid)}

        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return any(code.nonce == nonce for code in provider.codes.values())

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            return UserInfo(provider.claims_of(user.sub))

    class AccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return KeySet([provider.signing_key])

        def get_audiences(self, client: Client, user: User, scope: str) -> list[str]:
            return [API_AUDIENCE]

        def get_extra_claims(
            self, client: Client, grant_type: str, user: User, scope: str
        ) -> dict[str, Any]:
            return provider.claims_of(user.sub)

    server.register_token_generator("default", AccessTokens(provider.issuer))
    server.register_grant(CodeGrant, [IdTokens(require_nonce=True), CodeChallenge(required=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify(
            issuer=provider.issuer,
            authorization_endpoint=f"{provider.issuer}/authorize",
            token_endpoint=f"{provider.issuer}/token",
            jwks_uri=f"{provider.issuer}/jwks",
            end_session_endpoint=f"{provider.issuer}/end_session",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            code_challenge_methods_supported=["S256"],
        )

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(KeySet(provider.keys).as_dict(private=False))

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        if provider.signed_in is None:
            return "sign in first", 401
        if provider.ask_to_continue and request.method == "GET":
            # A page of the provider's own, as when a person must sign in or consent there:
            # the way back to the console then starts on the provider's site.
            return (
                '<!DOCTYPE html><html lang="en"><body><form method="post">'
                f'<button id="continue" type="submit">Continue as {provider.signed_in}</button>'
                "</form></body></html>"
            )
        return server.create_authorization_response(grant_user=User(provider.signed_in))

    @app.get("/end_session")
    def end_session() -> Any:
        provider.sign_outs.append(dict(request.args))
        provider.signed_in = None
        return "", 302, {"Location": request.args["post_logout_redirect_uri"]}

    @app.post("/token")
    def token() -> Any:
        provider.token_requests.append(dict(request.form))
        response = server.create_token_response()
        return response

    return app


@contextlib.contextmanager
def running_provider(host: str = "127.0.0.1") -> Iterator[Provider]:
    """The provider served on a free port of 127.0.0.1 until the block ends, its issuer named
    with ``host`` (``localhost`` makes it another site than a console on 127.0.0.1)."""
    port = free_port()
    provider = Provider(issuer=f"http://{host}:{port}")
    provider.rotate_key()
    server = make_server("127.0.0.1", port, build_app(provider), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(timeout=10)
