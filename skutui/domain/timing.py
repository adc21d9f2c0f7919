"""How long a takeover takes at the current settings: the timing budget.

keepalived's own arithmetic (RFC 5798), from the check interval (``advert_int``) and the
priority of the node that takes over:

- a master that falls silent (crash, power, a cut link) is taken over after three missed
  adverts and a skew: ``3 x interval + (256 - priority) x interval / 256``;
- a master that says goodbye (priority 0: maintenance, a drill, keepalived stopped cleanly)
  is taken over after the skew alone;
- keepalived killed on the master: nothing says goodbye for it, so it counts as silent.

The figures are keepalived's waits; the commit of the peer's connections comes after (the
history records how long it took). Pure: the console's Details and Edit show these.
"""

from __future__ import annotations

from dataclasses import dataclass

from skutui.domain.model import ClusterConfig
from skutui.domain.render import vrrp_priority
from skutui.domain.values import format_seconds

MISSED_ADVERTS = 3
"""RFC 5798's Master_Down_Interval counts three advert intervals before the skew."""


@dataclass(frozen=True)
class Takeover:
    situation: str
    seconds: float
    how: str


def skew(config: ClusterConfig, taker: str) -> float:
    """The Skew_Time of the node that takes over (lower priority waits longer)."""
    return (256 - vrrp_priority(config, taker)) * config.check_interval / 256


def master_down(config: ClusterConfig, taker: str) -> float:
    return MISSED_ADVERTS * config.check_interval + skew(config, taker)


def _s(seconds: float) -> str:
    return f"{format_seconds(seconds)} s"


def budget(config: ClusterConfig, taker: str) -> list[Takeover]:
    """Each way the master can go, and how long until ``taker`` holds the floating IPs."""
    interval, wait = config.check_interval, skew(config, taker)
    silent = master_down(config, taker)
    silent_how = f"{MISSED_ADVERTS} x {_s(interval)} + skew {_s(wait)}"
    return [
        Takeover("Master lost (crash, cut link)", silent, silent_how),
        Takeover("keepalived killed on the master", silent, f"as a lost master: {silent_how}"),
        Takeover("Maintenance, drill, clean stop", wait, f"skew {_s(wait)} after its goodbye"),
    ]


def summary(config: ClusterConfig, taker: str) -> str:
    """One line for a form: the figure that matters most, and the quick one."""
    return (f"Takeover {_s(master_down(config, taker))} (lost master), "
            f"{_s(skew(config, taker))} (hand-over)")


def details(config: ClusterConfig, taker: str) -> str:
    """The budget as one value for the Details screen, a line a situation."""
    silent, wait = master_down(config, taker), skew(config, taker)
    width = max(len(_s(silent)), len(_s(wait)))
    return "\n".join([
        f"{_s(silent):>{width}}  master lost, or keepalived killed",
        f"{_s(wait):>{width}}  maintenance, drill, clean stop",
        f"({MISSED_ADVERTS} adverts x {_s(config.check_interval)} + skew {_s(wait)} of {taker})",
    ])
