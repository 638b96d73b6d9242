"""The two libc calls the standard library lacks and the watchdog needs (prctl, setns), made through the
_ctypes extension alone. The ctypes package costs about 5 ms to import (struct, its whole family of
types), and the watchdog and its forwarder start on every create, the watchdog on the cold start's
critical path. Where this interpreter's _ctypes differs, the ctypes package does the same. Standard
library only, like the watchdog.
"""

from __future__ import annotations

import os

PR_SET_PDEATHSIG = 1
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_calls: dict[str, Callable[..., int]] = {}


def _lookup(name: str) -> Callable[..., int]:
    try:
        import _ctypes

        class Int(_ctypes._SimpleCData):  # ctypes.c_int's own definition
            _type_ = "i"

        class Call(_ctypes.CFuncPtr):  # a cdecl function returning an int
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        # dlopen(NULL): the program itself, libc's symbols with it
        fn: Callable[..., int] = Call(_ctypes.dlsym(_ctypes.dlopen(None), name))  # type: ignore[arg-type]
    except (ImportError, AttributeError, TypeError, OSError):
        import ctypes

        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    return fn


def load(*names: str) -> None:
    """Look the calls up now: before a fork, so the child has nothing left to load."""
    for name in names:
        if name not in _calls:
            _calls[name] = _lookup(name)


def _call(name: str, *args: int) -> None:
    """Call libc's `name`; OSError with its errno when it fails."""
    load(name)
    if _calls[name](*args) != 0:
        import _ctypes

        err = _ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def die_with_parent(sig: int) -> None:
    """PR_SET_PDEATHSIG: `sig` when the parent (thread) goes. A change of credentials clears it."""
    _call("prctl", PR_SET_PDEATHSIG, sig)


def setns(fd: int, nstype: int) -> None:
    """Join the namespace open at `fd` (its CLONE_NEW* type)."""
    _call("setns", fd, nstype)
