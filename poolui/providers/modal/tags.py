"""The tags that make a Modal sandbox ours, and how poolui's values fit Modal's tag rules."""

from __future__ import annotations

import base64
import hashlib
import re

from ...errors import ProviderError
from ..common import EXPIRES as TAG_EXPIRES
from ..common import MEMBER as TAG_MEMBER
from ..common import NAMESPACE as TAG_NS
from ..common import POOL as TAG_POOL
from ..common import REVISION as TAG_REVISION

__all__ = ["TAG_EXPIRES", "TAG_MEMBER", "TAG_NS", "TAG_POOL", "TAG_REVISION", "decode_member", "encode_member",
           "tag_value"]
_TAG_RE = re.compile(r"^[a-zA-Z0-9._-]{1,63}$")  # Modal's rule for tag names and values
_ENCODED = "b32."


def tag_value(text: str) -> str:
    """A Modal-legal tag value for a marker that is only ever matched (pool name, namespace)."""
    return text if _TAG_RE.match(text) else "h." + hashlib.sha256(text.encode()).hexdigest()[:32]


def encode_member(member_id: str) -> str:
    """Member ids must come back exactly from the tag, so odd ones are base32-encoded rather than hashed."""
    if _TAG_RE.match(member_id) and not member_id.startswith(_ENCODED):
        return member_id
    coded = _ENCODED + base64.b32encode(member_id.encode()).decode().rstrip("=").lower()
    if not _TAG_RE.match(coded):
        raise ProviderError(f"member id {member_id!r} is too long to be stored in a Modal tag")
    return coded


def decode_member(tag: str) -> str:
    if not tag.startswith(_ENCODED):
        return tag
    body = tag[len(_ENCODED):].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8)).decode()
