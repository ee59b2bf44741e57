"""The Web API method table and the dispatch every request goes through.

Order of checks, as Slack applies them: unknown method, injected fault, token, rate
limit (chat.postMessage, per channel), then the method itself. Every request is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.slack import methods_chat as chat
from lab.slack import methods_directory as directory
from lab.slack import methods_files as files
from lab.slack import methods_views as views
from lab.slack.api import ApiRequest, SlackError, decode_params
from lab.slack.faults import ChannelRateLimiter, FaultPlan
from lab.slack.records import ApiCall, utc_now
from lab.slack.state import Workspace

Handler = Callable[[Workspace, ApiRequest], dict[str, Any]]
TokenKind = Literal["bot", "app"]


@dataclass(frozen=True)
class Method:
    """One emulated Web API method and the token type it needs."""

    handler: Handler
    token: TokenKind = "bot"


METHODS: dict[str, Method] = {
    "auth.test": Method(directory.auth_test),
    "chat.postMessage": Method(chat.post_message),
    "chat.update": Method(chat.update_message),
    "chat.delete": Method(chat.delete_message),
    "chat.postEphemeral": Method(chat.post_ephemeral),
    "chat.getPermalink": Method(chat.get_permalink),
    "reactions.add": Method(chat.add_reaction),
    "views.open": Method(views.open_view),
    "views.update": Method(views.update_view),
    "views.push": Method(views.push_view),
    "users.info": Method(directory.user_info),
    "conversations.info": Method(directory.conversation_info),
    "conversations.replies": Method(directory.conversation_replies),
    "usergroups.users.list": Method(directory.usergroup_users),
    "files.getUploadURLExternal": Method(files.get_upload_url),
    "files.completeUploadExternal": Method(files.complete_upload),
    "apps.connections.open": Method(directory.connections_open, token="app"),
}


@dataclass(frozen=True)
class Tokens:
    """The credentials the emulated app was issued."""

    bot: str
    app: str


@dataclass(frozen=True)
class ApiResult:
    """What the HTTP layer sends back."""

    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Dispatcher:
    """Answers Web API requests against a workspace, recording each call."""

    workspace: Workspace
    tokens: Tokens
    limiter: ChannelRateLimiter = field(default_factory=ChannelRateLimiter)
    faults: FaultPlan = field(default_factory=FaultPlan)

    def dispatch(self, req: ApiRequest) -> ApiResult:
        """Answer one request under the workspace lock and record it."""
        with self.workspace.lock:
            try:
                body = {"ok": True, **self._answer(req)}
                result = ApiResult(body)
            except SlackError as exc:
                result = ApiResult(exc.body(), exc.status, exc.headers)
            params = decode_params({k: v for k, v in req.params.items() if k != "token"})
            self.workspace.calls.append(
                ApiCall(req.method, params, result.status, result.body, utc_now())
            )
            return result

    def _answer(self, req: ApiRequest) -> dict[str, Any]:
        method = METHODS.get(req.method)
        if method is None:
            raise SlackError("unknown_method", req_method=req.method)
        fault = self.faults.take(req.method)
        if fault is not None:
            raise fault
        self._authenticate(req.token, method.token)
        if req.method == "chat.postMessage":
            self.limiter.take(self._bucket_key(req.str_param("channel")))
        return method.handler(self.workspace, req)

    def _bucket_key(self, channel: str | None) -> str:
        """Rate-limit per resolved channel id, so `#general` and its id share a bucket."""
        try:
            return self.workspace.resolve_channel(channel).id
        except SlackError:
            return channel or ""

    def _authenticate(self, token: str | None, kind: TokenKind) -> None:
        if not token:
            raise SlackError("not_authed")
        if token not in {self.tokens.bot, self.tokens.app}:
            raise SlackError("invalid_auth")
        expected = self.tokens.bot if kind == "bot" else self.tokens.app
        if token != expected:
            raise SlackError("not_allowed_token_type")
