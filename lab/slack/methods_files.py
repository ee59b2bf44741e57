"""The v2 file upload flow: getUploadURLExternal, the upload URL, completeUploadExternal."""

from __future__ import annotations

from typing import Any

from lab.slack.api import ApiRequest, SlackError
from lab.slack.methods_chat import bot_message
from lab.slack.records import UploadedFile
from lab.slack.state import Workspace


def get_upload_url(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """files.getUploadURLExternal: reserve a file id and an upload URL on the emulator."""
    filename = req.require("filename")
    try:
        length = int(req.require("length"))
    except ValueError as exc:
        raise SlackError("invalid_arguments", errors=["length must be an integer"]) from exc
    file_id = ws.next_id("F")
    ws.files[file_id] = UploadedFile(
        id=file_id,
        filename=filename,
        length=length,
        alt_txt=req.str_param("alt_txt"),
        snippet_type=req.str_param("snippet_type"),
    )
    return {"upload_url": f"{req.base_url}/upload/v1/{file_id}", "file_id": file_id}


def store_upload(ws: Workspace, file_id: str, content: bytes) -> bool:
    """Keep the bytes POSTed to an upload URL; False when the URL is unknown."""
    upload = ws.files.get(file_id)
    if upload is None or upload.completed:
        return False
    upload.content = content
    return True


def complete_upload(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """files.completeUploadExternal: finish uploads and share them to a channel/thread."""
    entries = req.json_param("files")
    if not isinstance(entries, list) or not entries:
        raise SlackError("invalid_arguments", errors=["files must be a non-empty array"])
    channel_ids = _target_channels(ws, req)
    thread_ts = req.str_param("thread_ts")
    if thread_ts and len(channel_ids) != 1:
        raise SlackError("invalid_arguments", errors=["thread_ts requires exactly one channel"])
    uploads = [_finish(ws, entry) for entry in entries]
    comment = req.str_param("initial_comment")
    for upload in uploads:
        upload.channels, upload.thread_ts, upload.initial_comment = channel_ids, thread_ts, comment
    for channel_id in channel_ids:
        content = {"text": comment or "", "files": [_file_object(u) for u in uploads]}
        ws.messages.add(channel_id, {**bot_message(content, thread_ts=thread_ts), "upload": True})
    return {"files": [_file_object(u) for u in uploads]}


def _target_channels(ws: Workspace, req: ApiRequest) -> list[str]:
    refs = [req.str_param("channel_id"), *(req.str_param("channels") or "").split(",")]
    return [ws.resolve_channel(ref).id for ref in refs if ref]


def _finish(ws: Workspace, entry: Any) -> UploadedFile:
    file_id = entry.get("id") if isinstance(entry, dict) else None
    upload = ws.files.get(str(file_id))
    if upload is None or upload.content is None:
        raise SlackError("file_not_found")
    upload.completed = True
    upload.title = entry.get("title") or upload.filename
    return upload


def _file_object(upload: UploadedFile) -> dict[str, Any]:
    return {
        "id": upload.id,
        "name": upload.filename,
        "title": upload.title,
        "size": len(upload.content or b""),
        "channels": list(upload.channels),
    }
