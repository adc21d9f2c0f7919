"""The node agent: keeps a node's part of the cluster working while no console is open.

``python -m skutui.agent`` is the long-running process (started by ``LocalNode.start``); it
runs each VRRP transition as keepalived's notify FIFO reports it. keepalived's notify hook
(``skutui/system/notify_hook.sh``) runs ``skutui agent notify STATE`` itself only when the
agent did not.
"""
