"""skutui: a terminal console for a two-node active-passive load-balancer cluster."""

__version__ = "0.1.0"
