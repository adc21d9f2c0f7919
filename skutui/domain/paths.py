"""Where skutui and the daemons it drives keep their files: one place for every path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG_ROOT = Path("/etc/skutui")
CONFIG_ROOT_ENV = "SKUTUI_ROOT"
DEFAULT_STATE_DIR = Path("/var/lib/skutui")


@dataclass(frozen=True)
class Paths:
    config_root: Path = DEFAULT_CONFIG_ROOT
    keepalived_conf: Path = Path("/etc/keepalived/keepalived.conf")
    conntrackd_conf: Path = Path("/etc/conntrackd/conntrackd.conf")
    run_dir: Path = Path("/run/skutui")
    log_dir: Path = Path("/var/log/skutui")
    """Where skutui logs on a machine without systemd's journal (rotated by logrotate)."""
    authorized_keys: Path = Path("/root/.ssh/authorized_keys")
    """root's, where each node allows the other's skutui key (see domain.trust)."""

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
    def new_private_key(self) -> Path:
        """The next key while ``skutui cluster rekey`` proves it works; then it replaces
        ``private_key``."""
        return self.local_dir / "id_ed25519.new"

    @property
    def known_hosts(self) -> Path:
        return self.local_dir / "known_hosts"

    @property
    def peer_link(self) -> Path:
        """The peer's pinned cluster address and link-layer address (``IP MAC``): the only
        sender whose VRRP and conntrackd traffic this node accepts."""
        return self.local_dir / "peer_link"

    @property
    def journal_dir(self) -> Path:
        return self.local_dir / "journal"

    @property
    def state_dir(self) -> Path:
        """What this node keeps across restarts and reboots, never synced, root's only: its
        history and the hooks' and the webhook's queues. A configuration root moved elsewhere
        (SKUTUI_ROOT, tests) keeps its state beside it, in its local folder, so it never mixes
        with the machine's own."""
        if self.config_root == DEFAULT_CONFIG_ROOT:
            return DEFAULT_STATE_DIR
        return self.local_dir / "state"

    @property
    def history_file(self) -> Path:
        return self.state_dir / "history.sqlite"

    @property
    def hooks_queue(self) -> Path:
        """Events the hooks have yet to run for, one file each, oldest first: on disk, so that
        an event a slow hook held back (the failover it was to report) outlives a restart of
        the agent, a crash or a reboot."""
        return self.state_dir / "hooks"

    @property
    def webhook_queue(self) -> Path:
        """Events the webhook could not deliver yet, one file each, oldest first."""
        return self.state_dir / "webhook"

    @property
    def hooks_dir(self) -> Path:
        """Executables that receive each event as JSON on standard input (synced with the
        configuration, so both nodes run the same)."""
        return self.config_root / "hooks.d"

    @property
    def drill_mark(self) -> Path:
        """Present while a drill hands the floating IPs over: the hand-over's cause is "drill"."""
        return self.run_dir / "drill"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"

    @property
    def agent_state(self) -> Path:
        """Written by the running agent: its pid and which of its parts run."""
        return self.run_dir / "agent.json"

    @property
    def log_file(self) -> Path:
        """The agent's and keepalived's notify hook's log where there is no journal."""
        return self.log_dir / "skutui.log"

    @property
    def notify_fifo(self) -> Path:
        return self.run_dir / "keepalived.fifo"

    @property
    def transition_mark(self) -> Path:
        """The agent's mark of the transition it took (``skutui.system.hook``); written by
        the agent alone, read by keepalived's hook."""
        return self.run_dir / "transition"

    @property
    def keepalived_report(self) -> Path:
        """The state keepalived last announced, and when; written by keepalived's notify
        hook alone, read by the agent when it starts."""
        return self.run_dir / "keepalived.state"

    @property
    def agent_lock(self) -> Path:
        """Held (flock) by the running agent for as long as it runs: one agent per node."""
        return self.run_dir / "agent.lock"

    @property
    def generation_file(self) -> Path:
        """The configuration generation this node holds (``skutui.system.generation``)."""
        return self.local_dir / "generation"

    @property
    def set_aside_dir(self) -> Path:
        """This node's own files, kept when a newer configuration from the peer replaced them."""
        return self.local_dir / "set-aside"

    @property
    def change_lock(self) -> Path:
        """Held (flock) while a cluster change runs on this node; its text names the change.
        Runtime state: a lock never outlives its holder, nor a reboot."""
        return self.run_dir / "change.lock"

    @property
    def change_record(self) -> Path:
        """The rollback snapshot of a cluster change under way, on disk before its first step."""
        return self.local_dir / "change.json"

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
    def handover_file(self) -> Path:
        """keepalived's track_file for handing the master role over (its value is added to
        the priority; see ``render.HANDOVER_YIELD`` and ``render.HANDOVER_NOW``)."""
        return self.run_dir / "handover"

    @property
    def service_state_dir(self) -> Path:
        """``NAME.starting`` while the agent starts a service, ``NAME.failed`` after a
        master-only service failed here: read by keepalived's service checks."""
        return self.run_dir / "services"

    @property
    def conntrackd_lock(self) -> Path:
        return self.run_dir / "conntrackd.lock"

    @property
    def conntrackd_socket(self) -> Path:
        return self.run_dir / "conntrackd.ctl"
