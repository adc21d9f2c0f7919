"""Where skutui and the daemons it drives keep their files: one place for every path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG_ROOT = Path("/etc/skutui")
CONFIG_ROOT_ENV = "SKUTUI_ROOT"


@dataclass(frozen=True)
class Paths:
    config_root: Path = DEFAULT_CONFIG_ROOT
    keepalived_conf: Path = Path("/etc/keepalived/keepalived.conf")
    conntrackd_conf: Path = Path("/etc/conntrackd/conntrackd.conf")
    run_dir: Path = Path("/run/skutui")

    @classmethod
    def from_env(cls) -> Paths:
        root = os.environ.get(CONFIG_ROOT_ENV)
        return cls(config_root=Path(root)) if root else cls()

    @property
    def cluster_file(self) -> Path:
        return self.config_root / "cluster.toml"

    @property
    def local_dir(self) -> Path:
        """Never synced: this node's role, maintenance flag, keys and pinned host keys."""
        return self.config_root / "local"

    @property
    def role_file(self) -> Path:
        return self.local_dir / "role"

    @property
    def maintenance_flag(self) -> Path:
        return self.local_dir / "maintenance"

    @property
    def private_key(self) -> Path:
        return self.local_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.local_dir / "known_hosts"

    @property
    def journal_dir(self) -> Path:
        return self.local_dir / "journal"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"

    @property
    def agent_state(self) -> Path:
        """Written by the running agent: its pid and which of its parts run."""
        return self.run_dir / "agent.json"

    @property
    def agent_log(self) -> Path:
        return self.run_dir / "agent.log"

    @property
    def notify_fifo(self) -> Path:
        return self.run_dir / "keepalived.fifo"

    @property
    def transition_mark(self) -> Path:
        """The agent's "STATE TIME_NS" after it ran a transition; keepalived's hook reads it."""
        return self.run_dir / "transition"

    @property
    def keepalived_pid(self) -> Path:
        return self.run_dir / "keepalived.pid"

    @property
    def vrrp_pid(self) -> Path:
        return self.run_dir / "vrrp.pid"

    @property
    def keepalived_dump_dir(self) -> Path:
        return self.run_dir

    @property
    def keepalived_data_dump(self) -> Path:
        """Written on SIGUSR1 into $TMPDIR: start keepalived with TMPDIR=keepalived_dump_dir."""
        return self.keepalived_dump_dir / "keepalived.data"

    @property
    def keepalived_stats_dump(self) -> Path:
        """Written on SIGUSR2 into $TMPDIR, like keepalived_data_dump."""
        return self.keepalived_dump_dir / "keepalived.stats"

    @property
    def conntrackd_lock(self) -> Path:
        return self.run_dir / "conntrackd.lock"

    @property
    def conntrackd_socket(self) -> Path:
        return self.run_dir / "conntrackd.ctl"
