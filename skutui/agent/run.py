"""The agent's main loop: publish this node's state and guard the floating IPs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from skutui.core import store
from skutui.core.model import DEFAULT_CHECK_INTERVAL
from skutui.core.paths import Paths
from skutui.node import LocalNode

log = logging.getLogger("skutui.agent")


class Agent:
    def __init__(self, paths: Paths):
        self.node = LocalNode(paths)
        self.paths = paths

    def publish(self) -> None:
        state = {"pid": os.getpid(), "sync": False, "role": self.node.role().value}
        store.write_text_atomic(self.paths.agent_state, json.dumps(state) + "\n", mode=0o600)

    def guard_floating_ips(self) -> None:
        """A killed or hung keepalived never releases its floating IPs, and the peer takes
        them too: drop them here so that only one node answers for them."""
        config = self.node.config()
        if config is None or self.node.keepalived.running():
            return
        released = self.node.release_floating_ips(config)
        if released:
            log.warning("keepalived is not running: released floating IPs %s", ", ".join(released))

    def check_interval(self) -> float:
        try:
            config = self.node.config()
        except store.ConfigError:
            return DEFAULT_CHECK_INTERVAL
        return config.check_interval if config else DEFAULT_CHECK_INTERVAL

    def loop(self) -> None:
        while True:
            try:
                self.publish()
                self.guard_floating_ips()
            except Exception:  # noqa: BLE001 - the agent must outlive one bad round
                log.exception("agent round failed")
            time.sleep(self.check_interval())


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config_root = Path(argv[-1])
    agent = Agent(Paths(config_root=config_root))

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.loop()
    finally:
        agent.paths.agent_state.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
