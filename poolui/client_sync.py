"""A synchronous, read-only twin of PoolClient.list_pools/get on the standard library, for `check`.

Monitoring runs `poolui --headless check` every few seconds and it has a 200 ms budget; asyncio, httpx and
anyio cost ~60 ms of imports, a third of that. This reads the same endpoints, returns the same
PoolSnapshot objects and raises the same errors (the mapping lives here and PoolClient uses it too).
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

from .core.model import PoolSnapshot
from .errors import ERRORS_BY_CODE, PoolError, ServerUnreachable, Unauthorized


def error_from(status: int, body: bytes) -> PoolError:
    """The poolui error an HTTP error answer stands for."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    text = body[:200].decode("utf-8", "replace")
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        cls = Unauthorized if status == 401 else ERRORS_BY_CODE.get(data["error"], PoolError)
        return cls(str(data.get("detail") or data["error"]), reason=data.get("reason"))
    if status == 401:
        return Unauthorized(f"the server refused the token (HTTP 401): {text}")
    return PoolError(f"HTTP {status} from the server: {text}")


def get_json(url: str, token: str | None, path: str, timeout: float) -> Any:
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request("GET", (parts.path.rstrip("/") or "") + path, headers=headers)
        r = conn.getresponse()
        body = r.read()
    except TimeoutError:
        raise ServerUnreachable(f"poolui server at {url} did not answer in time") from None
    except OSError as e:
        raise ServerUnreachable(f"no poolui server at {url}: {e.strerror or e}") from None
    except http.client.HTTPException as e:
        raise ServerUnreachable(f"no poolui server at {url}: {type(e).__name__}: {e}") from None
    finally:
        conn.close()
    if r.status >= 400:
        raise error_from(r.status, body)
    try:
        return json.loads(body)
    except ValueError:
        raise PoolError(f"the server at {url} answered {path} with something that is not JSON") from None


def fetch_pools(url: str, token: str | None, pool: str | None = None, members: bool = False,
                timeout: float = 10.0) -> list[PoolSnapshot]:
    flag = "true" if members else "false"
    if pool is not None:
        return [PoolSnapshot.from_dict(get_json(url, token, f"/pools/{quote(pool, safe='')}?members={flag}",
                                                timeout))]
    data = get_json(url, token, f"/pools?members={flag}", timeout)
    return [PoolSnapshot.from_dict(d) for d in data["pools"]]
