"""The lake's few exceptions; where a built-in means the same thing, they also derive from it."""

from __future__ import annotations

from azhpc.errors import AzhpcError

__all__ = ["LakeAuthError", "LakeError", "LakePathError", "LakeUnreachableError"]


class LakeError(AzhpcError):
    """A Data Lake operation failed; the message names the profile and the setting to fix."""

    def __init__(
        self, message: str, *, profile: str = "", setting: str = "", status: int | None = None,
        code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.profile = profile
        self.setting = setting
        self.status = status
        self.code = code


class LakeAuthError(LakeError, PermissionError):
    """The storage account refused the credentials (wrong key, expired SAS, missing role)."""


class LakeUnreachableError(LakeError, ConnectionError):
    """The storage account could not be reached (wrong account name or endpoint, no network)."""


class LakePathError(LakeError, ValueError):
    """A lake path is malformed or escapes the lake's root."""
