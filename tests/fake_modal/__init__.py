"""A fake Modal API server for tests: the real `modal` SDK against gRPC services on 127.0.0.1."""

from .server import FakeModal, SandboxView
from .state import Behaviour
from .web import make_certificate

__all__ = ["Behaviour", "FakeModal", "SandboxView", "make_certificate"]
