"""Alert messages that land in Slack channels, read back into ``IncomingAlert``s.

Two senders are understood, both as they post with their stock templates and with the
custom templates most teams copy:

* **Alertmanager's Slack receiver** posts one legacy attachment per notification. Its
  default title (``slack.default.title`` → ``__subject``) is
  ``[FIRING:2] <group label values> (<other common label values>)``; its default text is
  empty, so such a message names only the group. The widespread custom text lists each
  alert as ``*Alert:* …``, ``*Description:* …``, ``*Details:*`` then ``• *label:* `value```
  lines; Alertmanager's ``__text_alert_list`` (``Labels:`` / `` - name = value`` /
  ``Annotations:`` / ``Source:``) is understood too.
* **Grafana alerting** posts one attachment (footer ``Grafana v…``) whose title is the
  same ``__subject`` (possibly ``[FIRING:1, RESOLVED:1] …``) and whose text is
  ``**Firing**`` / ``**Resolved**`` sections of ``__text_alert_list`` entries, each with
  ``Value:``, ``Labels:``, ``Annotations:``, ``Source:`` and ``Silence:`` lines.

Messages built from Block Kit blocks (``header``, ``section``, ``context``, ``rich_text``)
are flattened to the same lines first. Everything is pure: no Slack call, no clock.

Label values and annotations are untrusted. They are kept exactly as the message shows
them once Slack's own ``&lt; &gt; &amp;`` escaping is undone: ``<!channel>`` stays the
literal text ``<!channel>``. Whoever renders them must escape them. The message text is
the only source, so a value that itself contains a line break can imitate the lines that
follow it; a parsed alert is a lead for a diagnosis, never an authority.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.alerts.model import AlertOrigin, AlertStatus, IncomingAlert, label_fingerprint

__all__ = [
    "AlertTitle",
    "message_plain_text",
    "parse_alert_message",
    "parse_alert_title",
    "unescape_slack",
]

_TITLE = re.compile(
    r"""^[*_\s]*\[(?P<status>FIRING|RESOLVED)
        (?::(?P<firing>\d+))?
        (?:,\s*RESOLVED:(?P<resolved>\d+))?\]
        [*_]*\s*(?::[a-z0-9_+\-]+:\s*)?   # a severity emoji (__alert_severity_prefix_title)
        (?P<rest>.*?)[*_\s]*$""",
    re.IGNORECASE | re.VERBOSE,
)
_SECTION_STATUS = re.compile(
    r"^[*_\s]*(?:\[\d+\]\s*)?(?:alerts\s+)?(?P<status>firing|resolved)[*_:\s]*$", re.IGNORECASE
)
_LIST_HEADER = re.compile(r"^[*_\s]*(?P<name>labels|annotations)[*_\s]*:[*_\s]*$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*-\s+(?P<name>[^\s=]+) =(?: (?P<value>.*))?$")
_LINK_LINE = re.compile(
    r"^[*_\s]*(?P<name>source|silence|dashboard|panel)[*_\s]*:[*_\s]*(?P<value>\S.*)$",
    re.IGNORECASE,
)
_VALUE_LINE = re.compile(r"^\s*Value: (?P<value>.*)$")
_KEY_LINE = re.compile(r"^\s*\*(?P<key>[A-Za-z][A-Za-z ]{0,30}?)(?::\*|\*:)\s?(?P<value>.*)$")
_DETAIL_ITEM = re.compile(
    r"^\s*[•\-]\s*\*?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)(?::\*|\*:|:)\s?(?P<value>.*)$"
)
_SEVERITY_SUFFIX = re.compile(r"^(?P<text>.*?)\s+-\s+`(?P<severity>[^`]+)`$")
_GROUP_AND_COMMON = re.compile(r"^(?P<group>.*?)\s*(?:\((?P<common>[^()]*)\))?$")
_SEPARATOR = re.compile(r"^[\s*_\-=\u2013\u2014]*$")
_WRAPPED_LINK = re.compile(r"^<(?P<url>[^<>|]+)(?:\|[^<>]*)?>$")
_SLACK_ESCAPES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
_ESCAPE = re.compile("|".join(_SLACK_ESCAPES))

# ``*Key:*`` lines of the common custom templates: which annotation or label they fill.
_KEY_ANNOTATIONS = {
    "description": "description",
    "summary": "summary",
    "message": "message",
    "runbook": "runbook",
    "runbook url": "runbook_url",
}
_DETAILS_KEYS = {"details", "labels"}
_GRAFANA_MARKERS = ("**firing**", "**resolved**")


@dataclass(frozen=True)
class AlertTitle:
    """What ``[FIRING:2] A b (c d)`` says: status, counts and the group's label values."""

    status: AlertStatus
    firing: int | None
    resolved: int | None
    group_values: tuple[str, ...]
    common_values: tuple[str, ...]
    text: str

    @property
    def alertname(self) -> str | None:
        """The first group value: the alert name whenever ``alertname`` is grouped on."""
        return self.group_values[0] if self.group_values else None


def unescape_slack(text: str) -> str:
    """Undo Slack's escaping of ``<``, ``>`` and ``&`` in message text (one pass)."""
    return _ESCAPE.sub(lambda match: _SLACK_ESCAPES[match.group(0)], text)


def _escape_slack(text: str) -> str:
    """The inverse of ``unescape_slack``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_alert_title(line: str) -> AlertTitle | None:
    """Read an Alertmanager/Grafana ``__subject`` line, or None when ``line`` is not one."""
    match = _TITLE.match(line.strip())
    if match is None:
        return None
    rest = match["rest"].strip()
    parts = _GROUP_AND_COMMON.match(rest)
    group, common = (parts["group"], parts["common"] or "") if parts else (rest, "")
    return AlertTitle(
        status="firing" if match["status"].upper() == "FIRING" else "resolved",
        firing=int(match["firing"]) if match["firing"] else None,
        resolved=int(match["resolved"]) if match["resolved"] else None,
        group_values=tuple(group.split()),
        common_values=tuple(common.split()),
        text=rest,
    )


@dataclass
class _Draft:
    """One alert being read line by line."""

    status: AlertStatus | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generator_url: str | None = None
    alert_text: str | None = None
    severity: str | None = None

    def is_empty(self) -> bool:
        """True until a line has said something about this alert."""
        return not (self.labels or self.annotations or self.alert_text or self.generator_url)


@dataclass
class _Reader:
    """The state of reading one message part: drafts so far, the open list, the status."""

    status: AlertStatus | None = None
    drafts: list[_Draft] = field(default_factory=list)
    current: _Draft = field(default_factory=_Draft)
    section: str | None = None
    last_key: str | None = None
    blank_lines: int = 0

    def start(self) -> _Draft:
        """Close the current alert (if it holds anything) and open a new one."""
        if not self.current.is_empty():
            self.drafts.append(self.current)
        self.current = _Draft(status=self.status)
        self.section, self.last_key = None, None
        return self.current

    def finish(self) -> list[_Draft]:
        """Every alert read, the last one included."""
        self.start()
        return self.drafts


@dataclass(frozen=True)
class _Part:
    """One attachment, or the message's own text/blocks: a title and body lines."""

    title: str
    lines: tuple[str, ...]


def parse_alert_message(message: Mapping[str, Any]) -> list[IncomingAlert]:
    """The alerts a Slack message (an Events API ``message`` event or message object)
    carries; ``[]`` when it is not an alert message."""
    origin: AlertOrigin = "grafana" if _is_grafana(message) else "alertmanager-slack"
    alerts: list[IncomingAlert] = []
    for part in _message_parts(message):
        alerts.extend(_part_alerts(part, origin))
    return _unique(alerts)


def message_plain_text(message: Mapping[str, Any]) -> str:
    """Everything a message says, attachments and blocks included, unescaped."""
    chunks: list[str] = []
    for part in _message_parts(message):
        chunks.extend(line for line in (part.title, *part.lines) if line.strip())
    return "\n".join(chunks).strip()


def _part_alerts(part: _Part, origin: AlertOrigin) -> list[IncomingAlert]:
    title, lines = _title_of(part)
    reader = _Reader()
    for line in lines:
        _read_line(reader, line)
    alerts = [_to_alert(draft, title, origin) for draft in reader.finish()]
    found = [alert for alert in alerts if alert is not None]
    if not found and title is not None and title.alertname is not None:
        found.append(_group_alert(title, origin))
    return found


def _title_of(part: _Part) -> tuple[AlertTitle | None, tuple[str, ...]]:
    """The part's ``[FIRING…]`` title and the body lines that remain."""
    if part.title:
        return parse_alert_title(part.title), part.lines
    for index, line in enumerate(part.lines):
        if not line.strip():
            continue
        title = parse_alert_title(line)
        if title is not None:
            return title, part.lines[:index] + part.lines[index + 1 :]
        break
    return None, part.lines


def _read_line(reader: _Reader, line: str) -> None:
    """Advance ``reader`` by one line of a message body."""
    if not line.strip():
        reader.blank_lines += 1
        return
    blanks, reader.blank_lines = reader.blank_lines, 0
    for handler in (
        _read_section_status,
        _read_value,
        _read_list,
        _read_link,
        _read_key,
        _read_detail,
    ):
        if handler(reader, line):
            return
    _read_continuation(reader, line, blanks)


def _read_section_status(reader: _Reader, line: str) -> bool:
    match = _SECTION_STATUS.match(line)
    if match is None:
        return False
    reader.status = "firing" if match["status"].lower() == "firing" else "resolved"
    reader.start()
    return True


def _read_value(reader: _Reader, line: str) -> bool:
    """Grafana's ``Value: …`` opens an alert entry."""
    match = _VALUE_LINE.match(line)
    if match is None:
        return False
    reader.start().annotations["value"] = match["value"]
    return True


def _read_list(reader: _Reader, line: str) -> bool:
    """``Labels:`` / ``Annotations:`` headers and their `` - name = value`` items."""
    header = _LIST_HEADER.match(line)
    if header is not None:
        name = header["name"].lower()
        if name == "labels" and reader.current.labels:
            reader.start()
        reader.section, reader.last_key = name, None
        return True
    item = _LIST_ITEM.match(line)
    if item is None or reader.section not in ("labels", "annotations"):
        return False
    target = reader.current.labels if reader.section == "labels" else reader.current.annotations
    target[item["name"]] = item["value"] or ""
    reader.last_key = item["name"]
    return True


def _read_link(reader: _Reader, line: str) -> bool:
    """``Source: <url>`` (the generator URL); ``Silence:``, ``Dashboard:``, ``Panel:``."""
    match = _LINK_LINE.match(line)
    if match is None:
        return False
    url = _unwrap_link(match["value"].strip())
    name = match["name"].lower()
    if name == "source":
        reader.current.generator_url = url
    else:
        reader.current.annotations.setdefault(f"{name}_url", url)
    reader.section, reader.last_key = None, None
    return True


def _read_key(reader: _Reader, line: str) -> bool:
    """``*Alert:* …``, ``*Description:* …``, ``*Details:*`` and the like."""
    match = _KEY_LINE.match(line)
    if match is None:
        return False
    key, value = match["key"].strip().lower(), match["value"].strip()
    if key == "alert":
        _read_alert_key(reader.start(), value)
    elif key in _DETAILS_KEYS:
        reader.section, reader.last_key = "details", None
        return True
    elif key == "severity":
        reader.current.severity = _strip_code(value) or None
    elif key == "status":
        reader.current.status = _status_word(value) or reader.current.status
    elif key in _KEY_ANNOTATIONS:
        name = _KEY_ANNOTATIONS[key]
        reader.current.annotations[name] = value
        reader.section, reader.last_key = "annotations", name  # it may run on several lines
        return True
    reader.section, reader.last_key = None, None
    return True


def _read_alert_key(draft: _Draft, value: str) -> None:
    """``*Alert:* <summary or name> - `severity```."""
    match = _SEVERITY_SUFFIX.match(value)
    if match is not None:
        value, draft.severity = match["text"].strip(), match["severity"]
    draft.alert_text = value


def _read_detail(reader: _Reader, line: str) -> bool:
    """``• *name:* `value``` under ``*Details:*``."""
    match = _DETAIL_ITEM.match(line) if reader.section in ("details", "labels") else None
    if match is None:
        return False
    reader.current.labels[match["name"]] = _strip_code(match["value"].strip())
    return True


def _read_continuation(reader: _Reader, line: str, blanks: int) -> None:
    """A line that continues a multi-line label or annotation value; else ignored."""
    if reader.last_key is None or _SEPARATOR.match(line):
        return
    target = reader.current.labels if reader.section == "labels" else reader.current.annotations
    target[reader.last_key] += "\n" * (blanks + 1) + line


def _to_alert(draft: _Draft, title: AlertTitle | None, origin: AlertOrigin) -> IncomingAlert | None:
    """The alert a draft describes, or None when it lacks a status or a name."""
    status = draft.status or (title.status if title else None)
    alertname = draft.labels.get("alertname") or (title.alertname if title else None)
    alertname = alertname or draft.alert_text
    if status is None or not alertname:
        return None
    labels = {"alertname": alertname, **draft.labels}
    if draft.severity and "severity" not in labels:
        labels["severity"] = draft.severity
    annotations = dict(draft.annotations)
    if draft.alert_text and draft.alert_text != alertname:
        annotations.setdefault("summary", draft.alert_text)
    return IncomingAlert(
        alertname=alertname,
        status=status,
        labels=labels,
        annotations=annotations,
        generator_url=draft.generator_url,
        origin=origin,
    )


def _group_alert(title: AlertTitle, origin: AlertOrigin) -> IncomingAlert:
    """A message naming only its group (Alertmanager's default text is empty): one alert
    for the group, told apart from other groups of the same name by the title's values."""
    alertname = title.alertname or ""
    labels = {"alertname": alertname}
    return IncomingAlert(
        alertname=alertname,
        status=title.status,
        labels=labels,
        annotations={"group": title.text},
        fingerprint=label_fingerprint({**labels, "group": title.text}),
        origin=origin,
    )


def _unique(alerts: Iterable[IncomingAlert]) -> list[IncomingAlert]:
    """Drop repeats (the same alert in a block and in its attachment), keeping order."""
    seen: set[tuple[str, str]] = set()
    unique: list[IncomingAlert] = []
    for alert in alerts:
        key = (alert.fingerprint, alert.status)
        if key not in seen:
            seen.add(key)
            unique.append(alert)
    return unique


def _strip_code(value: str) -> str:
    """``\\`value\\``` → ``value``: only one pair of backticks wrapping the whole value."""
    if len(value) >= 2 and value.startswith("`") and value.endswith("`"):
        return value[1:-1]
    return value


def _unwrap_link(value: str) -> str:
    """``<https://x|label>`` or ``<https://x>`` (Slack's link markup) → ``https://x``."""
    match = _WRAPPED_LINK.match(value)
    return match["url"] if match else value


def _status_word(value: str) -> AlertStatus | None:
    word = _strip_code(value.strip("*_ ")).lower()
    if word == "firing":
        return "firing"
    return "resolved" if word == "resolved" else None


# --- Slack message structure ------------------------------------------------------------


def _message_parts(message: Mapping[str, Any]) -> Iterator[_Part]:
    """The message's own body (blocks, else text), then each attachment."""
    blocks = _list(message.get("blocks"))
    text = _text(message.get("text"))
    # Laid-out blocks are the message and ``text`` its notification fallback; ``rich_text``
    # blocks repeat ``text`` and are read only when there is no text.
    if any(_block_type(block) != "rich_text" for block in blocks) or (blocks and not text):
        yield _blocks_part(blocks)
    else:
        yield _Part("", _lines(text))
    for attachment in _list(message.get("attachments")):
        if isinstance(attachment, Mapping):
            yield from _attachment_parts(attachment)


def _attachment_parts(attachment: Mapping[str, Any]) -> Iterator[_Part]:
    """A legacy attachment: its title (else its fallback's), text and fields; its blocks."""
    title = unescape_slack(_text(attachment.get("title")))
    text = _text(attachment.get("text"))
    if not title and not text:
        title = unescape_slack(_text(attachment.get("fallback")).split(" | ", 1)[0])
    lines = [*_lines(_text(attachment.get("pretext"))), *_lines(text)]
    lines.extend(_field_lines(_list(attachment.get("fields"))))
    yield _Part(title.strip(), tuple(lines))
    blocks = _list(attachment.get("blocks"))
    if blocks:
        yield _blocks_part(blocks)


def _field_lines(fields: Sequence[Any]) -> Iterator[str]:
    """Attachment fields as ``*Title:* value`` lines (the custom templates' key lines)."""
    for item in fields:
        if isinstance(item, Mapping) and _text(item.get("title")):
            title = unescape_slack(_text(item.get("title")))
            yield f"*{title}:* {unescape_slack(_text(item.get('value')))}"


def _blocks_part(blocks: Sequence[Any]) -> _Part:
    """Block Kit blocks flattened: a ``header`` becomes the title, the rest body lines."""
    title = ""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "header" and not title:
            title = unescape_slack(_text(_mapping(block.get("text")).get("text")))
            continue
        for chunk in _block_texts(block):
            lines.extend(_lines(chunk))
    return _Part(title.strip(), tuple(lines))


def _block_texts(block: Mapping[str, Any]) -> Iterator[str]:
    """The text objects of one block, in reading order."""
    kind = block.get("type")
    if kind in ("section", "header"):
        yield _text(_mapping(block.get("text")).get("text"))
        for item in _list(block.get("fields")):
            yield _text(_mapping(item).get("text"))
    elif kind == "context":
        for item in _list(block.get("elements")):
            yield _text(_mapping(item).get("text"))
    elif kind == "rich_text":
        yield _rich_text(_list(block.get("elements")))


def _rich_text(elements: Sequence[Any]) -> str:
    """A ``rich_text`` block's elements back to mrkdwn-like text."""
    out: list[str] = []
    for element in elements:
        item = _mapping(element)
        kind = item.get("type")
        if kind in ("rich_text_section", "rich_text_preformatted", "rich_text_quote"):
            out.append(_rich_text(_list(item.get("elements"))))
            out.append("\n")
        elif kind == "rich_text_list":
            for child in _list(item.get("elements")):
                out.append("• " + _rich_text(_list(_mapping(child).get("elements"))))
                out.append("\n")
        else:
            out.append(_rich_element(item))
    return "".join(out)


def _rich_element(item: Mapping[str, Any]) -> str:
    """One inline rich-text element, as the equivalent message text would show it."""
    kind = item.get("type")
    if kind == "text":  # rich text is raw: escape it as message text is, to read it alike
        return _escape_slack(_text(item.get("text")))
    if kind == "link":
        url, label = _text(item.get("url")), _text(item.get("text"))
        return f"<{url}|{label}>" if label else f"<{url}>"
    if kind == "user":
        return f"<@{_text(item.get('user_id'))}>"
    if kind == "broadcast":
        return f"<!{_text(item.get('range'))}>"
    if kind == "channel":
        return f"<#{_text(item.get('channel_id'))}>"
    if kind == "emoji":
        return f":{_text(item.get('name'))}:"
    return ""


def _is_grafana(message: Mapping[str, Any]) -> bool:
    """Grafana signs its attachments (footer ``Grafana v…``) and heads its sections
    ``**Firing**`` / ``**Resolved**``; its default username is ``Grafana`` too."""
    names = [
        _text(message.get("username")),
        _text(_mapping(message.get("bot_profile")).get("name")),
    ]
    if any(name.lower().startswith("grafana") for name in names):
        return True
    for attachment in _list(message.get("attachments")):
        item = _mapping(attachment)
        footer = _text(item.get("footer")).lower()
        if footer.startswith("grafana") or "grafana" in _text(item.get("footer_icon")).lower():
            return True
    return any(line.strip().lower() in _GRAFANA_MARKERS for line in _all_lines(message))


def _all_lines(message: Mapping[str, Any]) -> Iterator[str]:
    for part in _message_parts(message):
        yield from part.lines


def _lines(text: str) -> tuple[str, ...]:
    return tuple(unescape_slack(text).splitlines())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _block_type(block: object) -> str:
    return _text(_mapping(block).get("type"))
