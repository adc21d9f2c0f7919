import pytest

from skutui.domain.digest import Digest, NodeFacts, digest
from skutui.domain.model import STATUS_COLOURS, Role, Status

ALL = {"keepalived": True, "conntrackd": True, "sync": True, "agent": True}
BACKUP_OK = {**ALL, "sync": False}


def without(services, *names):
    return {**services, **{name: False for name in names}}


ROWS = [
    # (case, facts, other role, status, message)
    ("unreachable", NodeFacts(Role.MASTER, ALL, reachable=False), Role.MASTER,
     Status.UNREACHABLE, "Node unreachable"),
    ("unreachable, nothing known", NodeFacts(Role.UNKNOWN, {}, reachable=False), None,
     Status.UNREACHABLE, "Node unreachable"),
    ("maintenance", NodeFacts(Role.MAINTENANCE, without(ALL, "sync")), Role.MASTER,
     Status.MAINTENANCE, "Node in maintenance mode"),
    ("maintenance, services down", NodeFacts(Role.MAINTENANCE, {}), None,
     Status.MAINTENANCE, "Node in maintenance mode"),
    ("split brain", NodeFacts(Role.MASTER, ALL, holds_floating_ips=True), Role.MASTER,
     Status.FAILURE, "Split brain: both nodes are master"),
    ("split brain beats failed services", NodeFacts(Role.MASTER, without(ALL, "conntrackd")), Role.MASTER,
     Status.FAILURE, "Split brain: both nodes are master"),
    ("floating IPs without keepalived", NodeFacts(Role.MASTER, without(ALL, "keepalived"), holds_floating_ips=True),
     Role.BACKUP, Status.FAILURE,
     "Floating IPs held while keepalived is down: the other node may hold them too"),
    ("floating IPs without keepalived, in maintenance",
     NodeFacts(Role.MAINTENANCE, {}, holds_floating_ips=True), Role.MASTER, Status.FAILURE,
     "Floating IPs held while keepalived is down: the other node may hold them too"),
    ("master healthy", NodeFacts(Role.MASTER, ALL, holds_floating_ips=True), Role.BACKUP,
     Status.OK, "Node online and active"),
    ("master healthy, peer unknown", NodeFacts(Role.MASTER, ALL), None,
     Status.OK, "Node online and active"),
    ("master healthy, peer in maintenance", NodeFacts(Role.MASTER, ALL), Role.MAINTENANCE,
     Status.OK, "Node online and active"),
    ("master missing two", NodeFacts(Role.MASTER, without(ALL, "sync", "conntrackd")), Role.BACKUP,
     Status.FAILURE, "Failed services: conntrackd, sync"),
    ("master missing agent", NodeFacts(Role.MASTER, without(ALL, "agent")), Role.BACKUP,
     Status.FAILURE, "Failed services: agent"),
    ("master keepalived down", NodeFacts(Role.MASTER, without(ALL, "keepalived")), Role.BACKUP,
     Status.FAILURE, "Failed services: keepalived"),
    ("master, service not reported", NodeFacts(Role.MASTER, {"keepalived": True, "agent": True}), Role.BACKUP,
     Status.FAILURE, "Failed services: conntrackd, sync"),
    ("backup healthy", NodeFacts(Role.BACKUP, BACKUP_OK), Role.MASTER,
     Status.OK, "Node online and passive"),
    ("backup healthy, sync not reported",
     NodeFacts(Role.BACKUP, {"keepalived": True, "conntrackd": True, "agent": True}), Role.MASTER,
     Status.OK, "Node online and passive"),
    ("backup missing conntrackd", NodeFacts(Role.BACKUP, without(BACKUP_OK, "conntrackd")), Role.MASTER,
     Status.FAILURE, "Failed services: conntrackd"),
    ("backup running sync", NodeFacts(Role.BACKUP, ALL), Role.MASTER,
     Status.FAILURE, "Config sync running on a backup: it would overwrite the master's files"),
    ("backup running sync and missing agent", NodeFacts(Role.BACKUP, without(ALL, "agent")), Role.MASTER,
     Status.FAILURE,
     "Failed services: agent; Config sync running on a backup: it would overwrite the master's files"),
    ("backup holding floating IPs", NodeFacts(Role.BACKUP, BACKUP_OK, holds_floating_ips=True), Role.MASTER,
     Status.FAILURE, "Backup holds floating IPs: the master holds them too"),
    ("both backup is fine per node", NodeFacts(Role.BACKUP, BACKUP_OK), Role.BACKUP,
     Status.OK, "Node online and passive"),
    # FAULT is not maintenance: red, naming the link (or the service) that failed.
    ("fault: a tracked link down", NodeFacts(Role.FAULT, BACKUP_OK, links_down=("eth1",)), Role.MASTER,
     Status.FAILURE, "FAULT: eth1 is down"),
    ("fault: two links down", NodeFacts(Role.FAULT, BACKUP_OK, links_down=("eth0", "eth1")), None,
     Status.FAILURE, "FAULT: eth0 is down; eth1 is down"),
    ("fault: stepping down for a dead service", NodeFacts(Role.FAULT, BACKUP_OK, services_down=("haproxy",)),
     Role.MASTER, Status.FAILURE, "FAULT: haproxy is down"),
    ("fault, nothing known", NodeFacts(Role.FAULT, BACKUP_OK), Role.MASTER,
     Status.FAILURE, "FAULT: keepalived reports a fault"),
    ("maintenance with a link down is still maintenance",
     NodeFacts(Role.MAINTENANCE, BACKUP_OK, links_down=("eth1",)), Role.MASTER,
     Status.MAINTENANCE, "Node in maintenance mode"),
    # The operator's services.
    ("master with haproxy down", NodeFacts(Role.MASTER, ALL, services_down=("haproxy",)), Role.BACKUP,
     Status.FAILURE, "haproxy is down"),
    ("master with two services and conntrackd down",
     NodeFacts(Role.MASTER, without(ALL, "conntrackd"), services_down=("haproxy", "nginx")), Role.BACKUP,
     Status.FAILURE, "Failed services: conntrackd; haproxy and nginx are down"),
    ("backup with an on-both service down", NodeFacts(Role.BACKUP, BACKUP_OK, services_down=("haproxy",)),
     Role.MASTER, Status.FAILURE, "not ready to take over: haproxy is down"),
    ("backup where a master-only service failed as master",
     NodeFacts(Role.BACKUP, BACKUP_OK, failed_here=("nginx",)), Role.MASTER,
     Status.FAILURE, "not ready to take over: nginx failed here as master"),
    ("unknown role", NodeFacts(Role.UNKNOWN, BACKUP_OK), Role.MASTER,
     Status.FAILURE, "Node role unknown"),
    ("unknown role, keepalived down", NodeFacts(Role.UNKNOWN, without(BACKUP_OK, "keepalived")), None,
     Status.FAILURE, "Node role unknown; Failed services: keepalived"),
]


@pytest.mark.parametrize(
    ("facts", "other", "status", "message"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_digest(facts, other, status, message):
    result = digest(facts, other)
    assert result == Digest(status, STATUS_COLOURS[status], message)


def test_colour_follows_the_model():
    assert digest(NodeFacts(Role.MASTER, ALL), Role.BACKUP).colour == "green"
    assert digest(NodeFacts(Role.MASTER, {}), Role.BACKUP).colour == "red"
    assert digest(NodeFacts(Role.MASTER, ALL, reachable=False), None).colour == "grey"
    assert digest(NodeFacts(Role.MAINTENANCE, {}), None).colour == "orange"


def test_every_status_is_reachable_from_the_table():
    assert {row[3] for row in ROWS} == set(Status)
