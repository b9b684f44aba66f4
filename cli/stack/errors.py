"""Errors of the local stack launcher; each message says what to do about it."""

from __future__ import annotations


class StackError(Exception):
    """The local stack could not be brought up, inspected or stopped."""


class ToolMissing(StackError):
    """A program the stack needs is not installed."""

    def __init__(self, tool: str, fix: str) -> None:
        super().__init__(f"{tool} not found on PATH: {fix}")
        self.tool = tool
