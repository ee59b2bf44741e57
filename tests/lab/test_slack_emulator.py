"""The Slack emulator's Web API, exercised through the real slack_sdk client and raw HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from lab.slack import SlackEmulator

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Diagnosis*"}}
APPROVE = {
    "type": "actions",
    "block_id": "approval",
    "elements": [
        {
            "type": "button",
            "action_id": "approve",
            "value": "req-1",
            "text": {"type": "plain_text", "text": "Approve"},
        }
    ],
}


@pytest.fixture
def client(slack_emulator: SlackEmulator) -> AsyncWebClient:
    """A real slack_sdk client pointed at the emulator with the bot token."""
    return AsyncWebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)


async def api_error(call: Any) -> SlackApiError:
    """Await a client call that must fail and return the SlackApiError."""
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def raw_post(
    emulator: SlackEmulator, method: str, *, data: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST to the emulator without slack_sdk; return (status, JSON body)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(emulator.api_url + method, data=data, headers=headers or {}) as response,
    ):
        return response.status, await response.json()


async def test_wrong_token_is_invalid_auth(slack_emulator: SlackEmulator) -> None:
    """A token the workspace never issued is `invalid_auth`."""
    client = AsyncWebClient(token="xoxb-wrong", base_url=slack_emulator.api_url)
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="hi"))
    assert error.response["error"] == "invalid_auth"


async def test_missing_token_is_not_authed(slack_emulator: SlackEmulator) -> None:
    """A request without any token is `not_authed`, as Slack answers."""
    status, body = await raw_post(slack_emulator, "auth.test")
    assert (status, body) == (200, {"ok": False, "error": "not_authed"})


async def test_tokens_only_work_for_their_methods(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """The app token only opens sockets and the bot token cannot open them."""
    app_client = AsyncWebClient(token=slack_emulator.app_token, base_url=slack_emulator.api_url)
    error = await api_error(app_client.chat_postMessage(channel="C0GENERAL", text="hi"))
    assert error.response["error"] == "not_allowed_token_type"
    error = await api_error(client.apps_connections_open(app_token=slack_emulator.bot_token))
    assert error.response["error"] == "not_allowed_token_type"
    opened = await app_client.apps_connections_open(app_token=slack_emulator.app_token)
    assert opened["url"].startswith(slack_emulator.base_url.replace("http", "ws") + "/socket-mode")


async def test_form_encoded_body_with_token_param_is_accepted(
    slack_emulator: SlackEmulator,
) -> None:
    """Form bodies carrying `token` and JSON-string blocks work like Slack."""
    data = {
        "token": slack_emulator.bot_token,
        "channel": "C0GENERAL",
        "text": "form",
        "blocks": '[{"type": "divider"}]',
    }
    status, body = await raw_post(slack_emulator, "chat.postMessage", data=data)
    assert status == 200
    assert body["ok"] is True
    assert body["message"]["blocks"][0]["type"] == "divider"
    assert slack_emulator.calls_to("chat.postMessage")[0].params["blocks"][0]["type"] == "divider"


async def test_unknown_method_is_unknown_method(slack_emulator: SlackEmulator) -> None:
    """A method Slack does not have is `unknown_method`."""
    headers = {"Authorization": f"Bearer {slack_emulator.bot_token}"}
    _, body = await raw_post(slack_emulator, "chat.teleport", headers=headers)
    assert body["error"] == "unknown_method"


async def test_unknown_channel_is_channel_not_found(client: AsyncWebClient) -> None:
    """Posting to a channel that does not exist is `channel_not_found`."""
    error = await api_error(client.chat_postMessage(channel="C0NOPE", text="hi"))
    assert error.response["error"] == "channel_not_found"


async def test_channel_can_be_named_or_added(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """Channels resolve by `#name`, and add_channel creates new ones."""
    slack_emulator.add_channel("C0OPS", "ops")
    posted = await client.chat_postMessage(channel="#ops", text="hello ops")
    assert posted["channel"] == "C0OPS"
    assert [m["text"] for m in slack_emulator.messages("C0OPS")] == ["hello ops"]


async def test_invalid_blocks_come_back_with_reasons(client: AsyncWebClient) -> None:
    """Blocks breaking Slack's limits are `invalid_blocks` with a reason per problem."""
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[header]))
    assert error.response["error"] == "invalid_blocks"
    assert error.response["errors"] == [
        "header text must be at most 150 characters (got 151) [json-pointer:/blocks/0/text/text]"
    ]


# slack_sdk warns about the missing text before sending; the refusal is what we test.
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_blocks_without_fallback_text_are_refused(client: AsyncWebClient) -> None:
    """chat.postMessage with blocks and no top-level text is refused."""
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", blocks=[SECTION]))
    assert error.response["error"] == "invalid_blocks"
    assert "top-level text fallback" in error.response["errors"][0]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_empty_and_oversized_messages_are_refused(client: AsyncWebClient) -> None:
    """No text and no blocks is `no_text`; text over 40,000 characters is `msg_too_long`."""
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text=""))
    assert error.response["error"] == "no_text"
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="x" * 40_001))
    assert error.response["error"] == "msg_too_long"


async def test_burst_then_429_with_retry_after(client: AsyncWebClient) -> None:
    """After the burst of 3, chat.postMessage answers 429 `ratelimited` with Retry-After."""
    for index in range(3):
        await client.chat_postMessage(channel="C0GENERAL", text=f"burst {index}")
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="one too many"))
    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    assert int(error.response.headers["Retry-After"]) >= 1
    await client.chat_postMessage(channel="C0ALERTS", text="other channels have their own bucket")


async def test_rate_limit_recovers_after_waiting(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """Once the bucket refills, posting works again."""
    slack_emulator.set_rate_limit(burst=1, per_second=20.0)
    await client.chat_postMessage(channel="C0GENERAL", text="first")
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="too soon"))
    assert error.response.status_code == 429
    await asyncio.sleep(0.1)
    assert (await client.chat_postMessage(channel="C0GENERAL", text="later"))["ok"]


async def test_rate_limit_can_be_disabled(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """set_rate_limit(burst=None) lets any number of posts through."""
    slack_emulator.set_rate_limit(burst=None)
    for index in range(10):
        await client.chat_postMessage(channel="C0GENERAL", text=f"flood {index}")
    assert len(slack_emulator.messages("C0GENERAL")) == 10


async def test_sdk_rate_limit_retry_handler_succeeds_after_429(
    slack_emulator: SlackEmulator,
) -> None:
    """slack_sdk's AsyncRateLimitErrorRetryHandler honours Retry-After and then succeeds."""
    slack_emulator.fail_next("chat.postMessage", status=429, retry_after=0)
    client = AsyncWebClient(
        token=slack_emulator.bot_token,
        base_url=slack_emulator.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    posted = await client.chat_postMessage(channel="C0GENERAL", text="eventually")
    assert posted["ok"]
    statuses = [call.http_status for call in slack_emulator.calls_to("chat.postMessage")]
    assert statuses == [429, 200]


async def test_fail_next_injects_500s_and_errors(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """fail_next answers HTTP 500s, then `ok: false` errors, then normal service."""
    slack_emulator.fail_next("auth.test", times=2)
    slack_emulator.fail_next("auth.test", error="team_is_restricted")
    for _ in range(2):
        error = await api_error(client.auth_test())
        assert (error.response.status_code, error.response["error"]) == (500, "internal_error")
    error = await api_error(client.auth_test())
    assert (error.response.status_code, error.response["error"]) == (200, "team_is_restricted")
    assert (await client.auth_test())["user_id"] == "U0BOT"


async def test_ts_values_are_unique_and_increasing(client: AsyncWebClient) -> None:
    """Message timestamps look like Slack's and strictly increase."""
    tss = [
        (await client.chat_postMessage(channel=channel, text="t"))["ts"]
        for channel in ("C0GENERAL", "C0ALERTS", "C0INCIDENTS")
    ]
    assert all(len(ts.split(".")[1]) == 6 for ts in tss)
    assert tss == sorted(tss, key=float)
    assert len(set(tss)) == 3


async def test_thread_replies_and_broadcasts(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """Replies land in the thread; only broadcasts also show in the channel."""
    root = await client.chat_postMessage(channel="C0INCIDENTS", text="Incident opened")
    await client.chat_postMessage(channel="C0INCIDENTS", text="step 1", thread_ts=root["ts"])
    await client.chat_postMessage(
        channel="C0INCIDENTS", text="resolved", thread_ts=root["ts"], reply_broadcast=True
    )
    thread = slack_emulator.thread("C0INCIDENTS", root["ts"])
    assert [m["text"] for m in thread] == ["Incident opened", "step 1", "resolved"]
    assert thread[0]["reply_count"] == 2
    assert [m["text"] for m in slack_emulator.messages("C0INCIDENTS")] == [
        "Incident opened",
        "resolved",
    ]
    replies = await client.conversations_replies(channel="C0INCIDENTS", ts=root["ts"])
    assert len(replies["messages"]) == 3


async def test_reply_to_unknown_thread_is_refused(client: AsyncWebClient) -> None:
    """A thread_ts that names no message is `thread_not_found` (stricter than Slack)."""
    error = await api_error(
        client.chat_postMessage(channel="C0GENERAL", text="r", thread_ts="1.000001")
    )
    assert error.response["error"] == "thread_not_found"


async def test_chat_update_keeps_history(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.update edits the message and keeps every earlier version."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="Running checks 0/3")
    for done in (1, 2):
        await client.chat_update(
            channel="C0GENERAL", ts=posted["ts"], text=f"Running checks {done}/3"
        )
    message = slack_emulator.message("C0GENERAL", posted["ts"])
    assert message is not None
    assert message["text"] == "Running checks 2/3"
    assert message["edited"]["user"] == "U0BOT"
    assert [m["text"] for m in slack_emulator.edits("C0GENERAL", posted["ts"])] == [
        "Running checks 0/3",
        "Running checks 1/3",
    ]


async def test_chat_update_refuses_unknown_and_foreign_messages(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """Unknown ts is `message_not_found`; someone else's message is `cant_update_message`."""
    error = await api_error(client.chat_update(channel="C0GENERAL", ts="1.000001", text="x"))
    assert error.response["error"] == "message_not_found"
    human = slack_emulator.add_message("C0GENERAL", "mine", user="U0ALICE")
    error = await api_error(client.chat_update(channel="C0GENERAL", ts=human["ts"], text="x"))
    assert error.response["error"] == "cant_update_message"


async def test_chat_delete_removes_the_message(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.delete removes the bot's message from the channel."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="oops")
    await client.chat_delete(channel="C0GENERAL", ts=posted["ts"])
    assert slack_emulator.messages("C0GENERAL") == []


async def test_ephemeral_messages_are_kept_per_user(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """chat.postEphemeral is recorded for its user; an unknown user is `user_not_found`."""
    await client.chat_postEphemeral(channel="C0GENERAL", user="U0BOB", text="only you")
    assert [e["text"] for e in slack_emulator.ephemerals(user="U0BOB")] == ["only you"]
    assert slack_emulator.ephemerals(user="U0ALICE") == []
    error = await api_error(client.chat_postEphemeral(channel="C0GENERAL", user="U0NOPE", text="x"))
    assert error.response["error"] == "user_not_found"


async def test_permalink_and_reactions(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """getPermalink links the message; reacting twice is `already_reacted`."""
    posted = await client.chat_postMessage(channel="C0ALERTS", text="alert")
    link = await client.chat_getPermalink(channel="C0ALERTS", message_ts=posted["ts"])
    assert link["permalink"].endswith("/archives/C0ALERTS/p" + posted["ts"].replace(".", ""))
    await client.reactions_add(channel="C0ALERTS", name="eyes", timestamp=posted["ts"])
    error = await api_error(
        client.reactions_add(channel="C0ALERTS", name="eyes", timestamp=posted["ts"])
    )
    assert error.response["error"] == "already_reacted"
    message = slack_emulator.message("C0ALERTS", posted["ts"])
    assert message is not None
    assert message["reactions"] == [{"name": "eyes", "users": ["U0BOT"], "count": 1}]


async def post_json(url: str, body: dict[str, Any]) -> int:
    """POST JSON to a response_url; return the HTTP status."""
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status


async def test_response_url_records_posts_and_allows_five_uses(
    slack_emulator: SlackEmulator,
) -> None:
    """A response_url records each body and refuses the sixth use with 404 `used_url`."""
    url = slack_emulator.new_response_url(channel_id="C0GENERAL", user_id="U0ALICE")
    statuses = [await post_json(url, {"text": f"update {i}"}) for i in range(6)]
    assert statuses == [200] * 5 + [404]
    assert [body["text"] for body in slack_emulator.responses(url)] == [
        f"update {i}" for i in range(5)
    ]
    assert slack_emulator.response_posts(url)[-1].error == "used_url"


async def test_response_url_applies_like_slack(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """in_channel posts a message, ephemeral stays private, replace_original rewrites."""
    posted = await client.chat_postMessage(channel="C0ALERTS", text="Approve?", blocks=[APPROVE])
    url = slack_emulator.new_response_url(
        channel_id="C0ALERTS", user_id="U0BOB", message_ts=posted["ts"]
    )
    await post_json(url, {"text": "Checking…"})
    await post_json(url, {"text": "Approved by Bob", "replace_original": True})
    await post_json(url, {"text": "Done", "response_type": "in_channel"})
    assert slack_emulator.responses(url)[1]["replace_original"] is True
    assert [e["text"] for e in slack_emulator.ephemerals(user="U0BOB")] == ["Checking…"]
    texts = [(m["text"], "blocks" in m) for m in slack_emulator.messages("C0ALERTS")]
    assert texts == [("Approved by Bob", False), ("Done", False)]


async def test_response_url_delete_original_removes_the_message(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """`delete_original` deletes the message the interaction came from."""
    posted = await client.chat_postMessage(channel="C0ALERTS", text="Approve?", blocks=[APPROVE])
    url = slack_emulator.new_response_url(
        channel_id="C0ALERTS", user_id="U0BOB", message_ts=posted["ts"]
    )
    assert await post_json(url, {"delete_original": True}) == 200
    assert slack_emulator.messages("C0ALERTS") == []


async def test_response_url_refuses_invalid_blocks(slack_emulator: SlackEmulator) -> None:
    """Invalid blocks on a response_url are refused with 400 and not counted as a use."""
    url = slack_emulator.new_response_url(channel_id="C0GENERAL", user_id="U0ALICE")
    assert await post_json(url, {"blocks": [SECTION]}) == 400
    assert slack_emulator.responses(url) == []
    assert slack_emulator.response_posts(url)[0].error == "invalid_blocks"


@pytest.mark.parametrize("as_file", [False, True])
async def test_files_upload_v2_end_to_end(
    slack_emulator: SlackEmulator, client: AsyncWebClient, as_file: bool
) -> None:
    """files_upload_v2 stores the bytes and shares the file into the thread."""
    root = await client.chat_postMessage(channel="C0INCIDENTS", text="Incident")
    data = b"lease holder dump\n" * 10
    source: dict[str, Any] = {"file": data} if as_file else {"content": data.decode()}
    result = await client.files_upload_v2(
        channel="C0INCIDENTS",
        thread_ts=root["ts"],
        filename="leases.txt",
        title="Leases",
        initial_comment="Evidence attached",
        **source,
    )
    assert result["file"]["title"] == "Leases"
    [stored] = slack_emulator.files
    assert (stored.content, stored.completed, stored.thread_ts) == (data, True, root["ts"])
    reply = slack_emulator.thread("C0INCIDENTS", root["ts"])[-1]
    assert reply["text"] == "Evidence attached"
    assert reply["files"][0]["id"] == stored.id


def modal(title: str = "Approve action") -> dict[str, Any]:
    """A small modal view."""
    return {
        "type": "modal",
        "callback_id": "approve-modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [SECTION],
    }


async def test_views_open_update_and_trigger_ids(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """views.open needs a fresh trigger_id once; views.update checks the hash."""
    trigger_id = slack_emulator.issue_trigger_id()
    opened = await client.views_open(trigger_id=trigger_id, view=modal())
    view = opened["view"]
    assert view["id"].startswith("V")
    assert slack_emulator.view(view["id"]) == view
    error = await api_error(client.views_open(trigger_id=trigger_id, view=modal()))
    assert error.response["error"] == "exchanged_trigger_id"
    error = await api_error(client.views_open(trigger_id="123.456.made-up", view=modal()))
    assert error.response["error"] == "invalid_trigger_id"
    updated = await client.views_update(
        view_id=view["id"], hash=view["hash"], view=modal("Approved")
    )
    assert updated["view"]["title"]["text"] == "Approved"
    error = await api_error(
        client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    )
    assert error.response["error"] == "hash_conflict"


async def test_views_push_stops_at_three_views(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """views.push stacks on the open modal; a fourth view is `push_limit_reached`."""
    root = await client.views_open(trigger_id=slack_emulator.issue_trigger_id(), view=modal())
    for _ in range(2):
        pushed = await client.views_push(trigger_id=slack_emulator.issue_trigger_id(), view=modal())
        assert pushed["view"]["root_view_id"] == root["view"]["id"]
    error = await api_error(
        client.views_push(trigger_id=slack_emulator.issue_trigger_id(), view=modal())
    )
    assert error.response["error"] == "push_limit_reached"


async def test_views_open_enforces_view_limits(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """A modal title over 24 characters is `invalid_arguments` with the reason."""
    error = await api_error(
        client.views_open(trigger_id=slack_emulator.issue_trigger_id(), view=modal("t" * 25))
    )
    assert error.response["error"] == "invalid_arguments"
    assert error.response["errors"] == [
        "view title must be at most 24 characters (got 25) [json-pointer:/view/title/text]"
    ]


async def test_usergroups_users_and_channels(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """usergroups.users.list, users.info and conversations.info answer from the directory."""
    slack_emulator.add_usergroup("S0APPROVERS", ["U0ALICE", "U0CAROL"])
    listed = await client.usergroups_users_list(usergroup="S0APPROVERS")
    assert listed["users"] == ["U0ALICE", "U0CAROL"]
    error = await api_error(client.usergroups_users_list(usergroup="S0NOPE"))
    assert error.response["error"] == "no_such_subteam"
    assert (await client.users_info(user="U0MALLORY"))["user"]["real_name"] == "Mallory Moss"
    error = await api_error(client.users_info(user="U0NOPE"))
    assert error.response["error"] == "user_not_found"
    info = await client.conversations_info(channel="C0ALERTS")
    assert info["channel"]["name"] == "alerts"


async def test_calls_are_recorded_without_tokens(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """Every call is recorded with decoded params, status, response and a UTC time."""
    await client.chat_postMessage(channel="C0GENERAL", text="hi", blocks=[SECTION])
    [call] = slack_emulator.calls
    assert call.method == "chat.postMessage"
    assert call.params["blocks"][0]["type"] == "section"
    assert "token" not in call.params
    assert (call.http_status, call.ok) == (200, True)
    assert call.at.utcoffset() is not None


async def test_reset_clears_traffic_but_keeps_the_directory(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    """reset() forgets messages and calls but keeps added channels and users."""
    slack_emulator.add_channel("C0OPS", "ops")
    await client.chat_postMessage(channel="C0OPS", text="hi")
    slack_emulator.reset()
    assert (slack_emulator.calls, slack_emulator.messages("C0OPS")) == ([], [])
    assert slack_emulator.channel("ops").id == "C0OPS"


async def test_wait_for_polls_until_truthy(slack_emulator: SlackEmulator) -> None:
    """async_wait_for returns the predicate's value or raises TimeoutError."""
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, slack_emulator.add_message, "C0GENERAL", "late")
    found = await slack_emulator.async_wait_for(lambda: slack_emulator.messages("C0GENERAL"))
    assert found[0]["text"] == "late"
    with pytest.raises(TimeoutError):
        await slack_emulator.async_wait_for(lambda: None, timeout=0.05)
