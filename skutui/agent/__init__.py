"""The node agent: keeps a node's part of the cluster working while no console is open.

``python -m skutui.agent`` is the long-running process (started by ``LocalNode.start``); it
runs each VRRP transition as keepalived's notify FIFO reports it. keepalived's notify hook
(``skutui/system/notify_hook.sh``) runs ``skutui agent notify STATE`` itself only when the
agent did not.

Its parts, one a module; ``main`` only builds them, wires them together and runs them:

- ``role_supervisor``: keepalived's notify FIFO, transitions run in order, role changes
  announced with their cause; ``transitions``: a transition's steps;
- ``takeover``: the takeover guard armed with the role, and a dead keepalived's hand-over
  (its floating IPs released); ``cluster_link``: what the cluster link filter drops;
- ``link``: the kept SSH connection to the peer, and whether it answers;
- ``sync_supervisor``: the sync started and stopped with role, synced paths and link;
  ``sync``: the sync itself (this node's tree, the master's pusher, the backup's applier,
  the SSH transport);
- ``replication_supervisor``: when the journal is replayed; ``replication``: the replay;
- ``services``: the daemons and services checked every few seconds;
- ``control``: the control socket served (its clients are ``skutui.system.control``'s).

Short-lived commands import some of these (``skutui node`` the backup's side of the sync,
``skutui agent notify`` the transitions): this package imports nothing on their behalf.
"""
