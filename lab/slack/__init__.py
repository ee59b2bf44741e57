"""An in-memory Slack for tests: the Web API emulator and the driver that plays Slack."""

from lab.slack.driver import DriverResponse, SlackDriver
from lab.slack.emulator import SlackEmulator
from lab.slack.records import ApiCall, Channel, ResponseUrlPost, UploadedFile, User
from lab.slack.validation import Problem, check_blocks, check_message, check_view

__all__ = [
    "ApiCall",
    "Channel",
    "DriverResponse",
    "Problem",
    "ResponseUrlPost",
    "SlackDriver",
    "SlackEmulator",
    "UploadedFile",
    "User",
    "check_blocks",
    "check_message",
    "check_view",
]
