"""What one sandbox of a pool costs per hour it runs: `price_per_hour` in the pool's table, or for a provider
that says a sandbox's cpu and memory (Modal) the rates its bill is made of, written in the provider's table:

    [pools.web]
    price_per_hour = 0.12        # any provider: per sandbox-hour, in your currency

    [pools.agents.modal]
    cpu = 2
    memory = "4GiB"
    cpu_rate = 0.047             # per core-hour  } from the provider's price list: poolui has no prices
    memory_rate = 0.008          # per GiB-hour   } of its own and never fetches one

The rates are taken out of the provider's table before the provider reads it, and do not count toward the
pool's revision: a new price replaces no sandbox. core/cost.py puts the price on sandbox-seconds.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError
from .reader import TableReader

RATE_KEYS = ("cpu_rate", "memory_rate")
MAX_PRICE = 1_000_000.0  # per hour: a bound, as every value has; far above any sandbox's
NUMBER = f"a number from 0 to {MAX_PRICE:,.0f}"


def take_rates(provider_table: dict[str, Any]) -> dict[str, Any]:
    """The rate keys, taken out of a provider's table (which then holds only the provider's own keys)."""
    return {k: provider_table.pop(k) for k in RATE_KEYS if k in provider_table}


def _amount(where: str, key: str, value: object, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= MAX_PRICE:
        raise ConfigError(f"{where}: key '{key}' = {value!r} is not allowed: expected {NUMBER} "
                          f"(what {unit} costs, in your currency)")
    return float(value)


def price_per_hour(t: TableReader, provider: str, rates: dict[str, Any], options: Any) -> float | None:
    """The pool's price per sandbox-hour (None: not priced). `rates` come from the provider's table and price
    its `cpu` (cores) and `memory` (MiB) as `options` holds them."""
    where = f"{t.where}.{provider}"
    if t.has("price_per_hour"):
        if rates:
            keys = " and ".join(f"{provider}.{k}" for k in rates)
            raise ConfigError(f"{t.where}: price_per_hour and {keys} both price a sandbox: give one or the other")
        return _amount(t.where, "price_per_hour", t.get("price_per_hour"), "one sandbox-hour")
    if not rates:
        return None
    if not hasattr(options, "cpu") or not hasattr(options, "memory"):
        raise ConfigError(f"{where}: key '{next(iter(rates))}' prices a sandbox by the cpu and memory it asks "
                          f"for, which the {provider} provider does not say: write price_per_hour = ... in the "
                          "pool's own table instead")
    price = 0.0
    for key, (request, unit, per) in {"cpu_rate": ("cpu", "one core-hour", 1.0),
                                      "memory_rate": ("memory", "one GiB-hour", 1024.0)}.items():
        if key not in rates:
            continue
        rate = _amount(where, key, rates[key], unit)
        amount = getattr(options, request)
        if amount is None:
            raise ConfigError(f"{where}: key '{key}' prices the {request} a sandbox asks for: write "
                              f"{request} = ... beside it (the provider's default is not known here)")
        price += rate * amount / per
    return price
