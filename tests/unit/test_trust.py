"""Trust between the nodes, without root's real files: what a key may do (its
authorized_keys line and the dispatcher of its forced command), what erase leaves of the
peer's key, what restore may touch, the key rotation on one node, and the log that holds
every replicated command line."""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import shlex
import stat
import subprocess
from pathlib import Path, PurePosixPath
from unittest import mock

import asyncssh
import pytest

from skutui import __main__ as skutui_entry
from skutui.agent.sync.backup import read_synced, stage_contents
from skutui.cli import main as skutui_cli
from skutui.domain import trust
from skutui.domain.errors import BadInput
from skutui.domain.paths import Paths
from skutui.domain.syncplan import SyncError, staged_path
from skutui.peer.keys import commit_key, ensure_key, new_key
from skutui.system import authorized_keys, logs, units
from skutui.system.node import LocalNode, SnapshotError

ADMIN = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm5Tc0/o6Zv3oXn3k5w5X3bR0vS6HcBZ3kT8Y1m0oXq "
         "admin@laptop")


def node_paths(tmp_path: Path) -> Paths:
    return Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run",
                 authorized_keys=tmp_path / "root" / ".ssh" / "authorized_keys",
                 keepalived_conf=tmp_path / "etc" / "keepalived" / "keepalived.conf",
                 conntrackd_conf=tmp_path / "etc" / "conntrackd" / "conntrackd.conf",
                 log_dir=tmp_path / "var" / "log" / "skutui")


def test_restore_refuses_any_file_a_snapshot_does_not_hold(tmp_path):
    """The proof: `node restore` wrote or deleted any absolute path it was handed."""
    paths = node_paths(tmp_path)
    victim = tmp_path / "root" / ".ssh" / "authorized_keys"
    victim.parent.mkdir(parents=True)
    victim.write_text(ADMIN + "\n")
    victim.chmod(0o600)
    node = LocalNode(paths)
    for name in (str(victim), "/etc/shadow", str(paths.config_root / ".." / "skutui" / "cluster.toml"),
                 str(paths.local_dir / "id_ed25519")):
        snapshot = {"files": {name: base64.b64encode(b"attacker\n").decode()},
                    "modes": {name: 0o666}, "running": {}}
        with mock.patch("skutui.system.node.write_bytes_atomic",
                        side_effect=AssertionError("wrote")):
            with pytest.raises(SnapshotError, match="not a file a snapshot holds"):
                node.restore(snapshot)
    gone = {"files": {str(victim): None}, "running": {}}
    with pytest.raises(SnapshotError):
        node.restore(gone)
    assert victim.read_text() == ADMIN + "\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    # What a snapshot does hold is restored.
    paths.local_dir.mkdir(parents=True)
    node.restore({"files": {str(paths.maintenance_flag): base64.b64encode(b"1\n").decode()},
                  "modes": {str(paths.maintenance_flag): 0o600},
                  "running": {"keepalived": False, "conntrackd": False, "agent": False}})
    assert paths.maintenance_flag.read_text() == "1\n"


def test_the_log_file_is_roots_alone_even_one_left_readable(tmp_path):
    """The proof: the agent's log was 0644 and held every replicated command line."""
    paths = node_paths(tmp_path)
    log = logs.open_log_file(paths)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    log.chmod(0o644)  # written by an older skutui
    assert stat.S_IMODE(logs.open_log_file(paths).stat().st_mode) == 0o600


class Stopped(units.Systemctl):
    """systemd with every unit stopped: nothing runs, nothing is asked of the machine's own."""

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0 if args[0] != "is-active" else 3, "", "")


def test_erase_removes_the_peers_key_and_keeps_root_s_own(tmp_path, monkeypatch):
    """The proof: destroy and erase left both keys in place, so the mutual root trust
    outlived the cluster."""
    # Debian's units are not this test's: their drop-ins stay as they are.
    monkeypatch.setattr("skutui.system.node.remove_drop_ins", lambda paths: False)
    paths = node_paths(tmp_path)
    peer_key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJuM+a3h/FdZpVrFQZPtliCbku7SyaB0rjvHckrGxBBM "
                "skutui@node-b")
    with_options = f'from="10.0.0.1",command="backup.sh" {ADMIN}'
    paths.authorized_keys.parent.mkdir(parents=True)
    paths.authorized_keys.write_text(f"# root's own\n{with_options}\n{peer_key}\n{ADMIN}\n")
    node = LocalNode(paths, Stopped())
    node.erase(keep_keys=True)
    assert peer_key in paths.authorized_keys.read_text(), "create's erase keeps it"
    node.erase()
    assert paths.authorized_keys.read_text() == f"# root's own\n{with_options}\n{ADMIN}\n"
    assert authorized_keys.skutui_keys(paths.authorized_keys) == []


PEER_IP = "198.18.0.2"
COMMENT = authorized_keys.PEER_COMMENT


def public_key(comment: str = "root@node-b") -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return key.export_public_key("openssh").decode().strip()


def bare(key: str) -> str:
    return " ".join(key.split()[:2])


# --- the authorized_keys line ------------------------------------------------------------------


def test_the_line_allows_skutuis_steps_only_from_the_peer_only():
    """The proof: each node's key was an unrestricted root login from any address."""
    key = public_key()
    line = trust.key_line(key, PEER_IP, COMMENT)
    assert line == f'restrict,from="{PEER_IP}",command="skutui node serve" {bare(key)} {COMMENT}'
    parsed = trust.parse_line(line)
    assert parsed is not None and parsed.is_skutui
    assert parsed.options == ("restrict", f'from="{PEER_IP}"', 'command="skutui node serve"')
    with pytest.raises(BadInput, match="not an IP address"):
        trust.key_line(key, '198.18.0.2",command="/bin/sh', COMMENT)
    with pytest.raises(trust.NotAPublicKey):
        trust.key_line("ssh-ed25519 AAAAnotbase64!", PEER_IP, COMMENT)
    with pytest.raises(trust.NotAPublicKey, match="does not hold a ssh-ed25519 key"):
        trust.key_line("ssh-ed25519 " + base64.b64encode(b"\0\0\0\x07ssh-rsa").decode(), PEER_IP,
                       COMMENT)


def test_authorizing_replaces_an_unrestricted_line_and_keeps_every_other_byte():
    key = public_key("skutui@node-b")
    others = ("# root's own keys\n"
              f'command="echo a, b",from="10.0.0.1" {ADMIN}\n'
              "\n"
              "not a key line at all \xff\n")
    text, changed = trust.authorize(others + key + "\n", key, PEER_IP, COMMENT)
    assert changed
    assert text == others + trust.key_line(key, PEER_IP, COMMENT) + "\n", "the bare line is gone"
    assert trust.authorize(text, key, PEER_IP, COMMENT) == (text, False)
    moved, changed = trust.authorize(text, key, "198.18.0.9", COMMENT)
    assert changed and moved.count(key.split()[1]) == 1 and 'from="198.18.0.9"' in moved


def test_revoking_removes_skutuis_lines_only():
    ours, old, legacy = public_key(), public_key(), public_key("skutui@node-a")
    admin_with_options = f'from="10.0.0.1",command="backup.sh" {ADMIN}'
    text = "\n".join([admin_with_options, trust.key_line(ours, PEER_IP, COMMENT),
                      trust.key_line(old, PEER_IP, "root@node-b"), legacy, "# end"]) + "\n"
    kept, removed = trust.revoke(text)
    assert removed == 3 and kept == f"{admin_with_options}\n# end\n", "the forced command marks one"
    kept, removed = trust.revoke(text, [old.split()[1]])
    assert removed == 1 and old.split()[1] not in kept and ours.split()[1] in kept
    only, _ = trust.authorize(text, ours, PEER_IP, COMMENT, only=True)
    assert [line.body for line in trust.skutui_keys(only)] == [ours.split()[1]]
    assert admin_with_options in only and "# end" in only


def test_the_new_key_replaces_an_old_one_without_skutuis_mark_by_its_body():
    new, old = public_key("skutui@node-b"), public_key("root@node-b")
    text = f"{ADMIN}\n{old}\n"
    kept, _ = trust.authorize(text, new, PEER_IP, COMMENT, only=True)
    assert old.split()[1] in kept, "without its body named, nothing marks the old key skutui's"
    replaced, changed = trust.authorize(text, new, PEER_IP, COMMENT, only=True,
                                        replacing=[old.split()[1]])
    assert changed and replaced == f"{ADMIN}\n{trust.key_line(new, PEER_IP, COMMENT)}\n"
    assert trust.authorize(text, new, PEER_IP, COMMENT, replacing=[old.split()[1]])[0] == kept, \
        "without only the old key stays: both work until the new one is proved"


def test_ssh_keygen_reads_what_the_line_allows(tmp_path):
    """OpenSSH's own parser agrees: the line is one key with these options."""
    key = public_key()
    path = tmp_path / "authorized_keys"
    path.write_text(trust.key_line(key, PEER_IP, COMMENT) + "\n")
    listed = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[1] == asyncssh.import_public_key(key).get_fingerprint("sha256")


# --- the forced command ------------------------------------------------------------------------


@pytest.mark.parametrize("original", [
    "skutui node facts --stream", "skutui node sync-put", "skutui node sync-apply",
    "skutui node sync-get", "skutui node replay", "skutui node agent-state --stream",
    "skutui node change",
    "skutui node erase --keep-keys", "skutui node authorize-key --from 198.18.0.1 --only",
    "skutui node history --json --since 2024-01-01T00:00:00", "skutui node drill unmark",
    "skutui node pin-peer-link", "skutui events --json --recent 0", "skutui --version",
    "skutui node manifest --exclude=/etc/skutui/local '/etc/my haproxy'",
])
def test_skutuis_own_steps_are_served(original):
    assert trust.served(original) == shlex.split(original)[1:]


@pytest.mark.parametrize("original", [
    None, "", "  ", "id", "sh", "/bin/bash -i", "sftp", "internal-sftp",
    "/usr/lib/openssh/sftp-server", "scp -t /root/.ssh", "rsync --server -e.Lsfx . /etc",
    "skutui", "skutui node", "skutui node serve", "skutui node journal --discard",
    "skutui node recover", "skutui node prepare", "skutui exec -- id",
    "skutui cluster destroy --yes", "skutui lab exec node-a -- id", "skutui agent notify master",
    "skutui events", "skutui events --json --recent 0 --state", "skutui node facts; id",
    "skutui node facts && id", "skutui node facts | sh", "skutui node $(id)",
    "skutui node `id`", "skutui node facts\nid", "skutui node 'facts", "/usr/bin/skutui node facts",
    "env skutui node facts", "skutui --version; id", "'skutui' node 'inventory'",
    "skutui  node facts",
])
def test_anything_else_is_refused_before_it_runs(original):
    with pytest.raises(trust.KeyRefused) as refused:
        trust.served(original)
    assert refused.value.exit_code == 2
    assert "skutui's own steps" in str(refused.value)


def test_every_node_step_is_either_served_or_this_nodes_own():
    """A new ``skutui node`` step is reachable by the peer only once it is listed; which
    steps the master actually sends is test_nodeops's and test_sync's (their fake peers
    refuse what the forced command would)."""
    parser = skutui_cli.build_parser()
    node = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["node"]
    steps = next(a for a in node._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(steps) == trust.SERVED_NODE_STEPS | trust.LOCAL_NODE_STEPS
    assert not trust.SERVED_NODE_STEPS & trust.LOCAL_NODE_STEPS


def run_skutui(argv: list[str], environ: dict[str, str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (mock.patch.dict(os.environ, environ),
          mock.patch("sys.stdin", io.StringIO(stdin)),
          contextlib.redirect_stdout(out), contextlib.redirect_stderr(err)):
        try:
            code = skutui_entry.main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_node_serve_runs_the_step_asked_for_and_refuses_a_shell(tmp_path):
    root = str(tmp_path / "etc" / "skutui")
    code, out, err = run_skutui(["node", "serve"], {"SSH_ORIGINAL_COMMAND": "skutui --version",
                                                    "SKUTUI_ROOT": root})
    assert (code, out.split()[0], err) == (0, "skutui", "")
    with mock.patch("subprocess.run", side_effect=AssertionError("ran")), \
            mock.patch("subprocess.Popen", side_effect=AssertionError("ran")), \
            mock.patch("os.execvp", side_effect=AssertionError("ran")):
        for original in ("id", "", "sftp", "skutui exec -- id", "skutui node journal --discard"):
            code, out, err = run_skutui(["node", "serve"], {"SSH_ORIGINAL_COMMAND": original,
                                                            "SKUTUI_ROOT": root})
            assert code == 2 and out == "", (original, out)
            assert err.startswith("skutui: skutui's key ") and "Traceback" not in err, err
            assert len(err.splitlines()) == 1, err


# --- the sync's contents, through the forced command -------------------------------------------


def test_staged_contents_land_in_the_backups_own_folder_only(tmp_path):
    """sync-put stages in this node's own synced folder, root's alone, whatever path the
    request names; its never-synced folder and anything outside are refused."""
    top = tmp_path / "backup"
    roots = [PurePosixPath("/etc/skutui")]
    local = PurePosixPath("/etc/skutui/local")
    token = "0123456789abcdef"
    data = base64.b64encode(b"synced\n").decode()
    answer = stage_contents({"path": "/etc/skutui/app.conf", "stage": token, "data": data},
                            roots, under=top, own_excluded=(local,))
    staged = top / answer["staged"].lstrip("/")
    assert answer["staged"] == staged_path("/etc/skutui/app.conf", token, roots)
    assert staged.read_bytes() == b"synced\n" and stat.S_IMODE(staged.stat().st_mode) == 0o600
    assert not (top / "etc/skutui/app.conf").exists(), "placed only by sync-apply"
    for path in ("/root/.ssh/authorized_keys", "/etc/skutui/local/id_ed25519",
                 "/etc/skutui/../shadow", "etc/skutui/x"):
        with pytest.raises(SyncError):
            stage_contents({"path": path, "stage": token, "data": data}, roots, under=top,
                           own_excluded=(local,))
    with pytest.raises(SyncError, match="token"):
        stage_contents({"path": "/etc/skutui/app.conf", "stage": "../../x", "data": data},
                       roots, under=top, own_excluded=(local,))
    assert sorted(p.name for p in (top / "etc/skutui").iterdir()) == [staged.name]


def test_a_master_reads_the_backups_synced_files_only_never_through_a_link(tmp_path):
    top = tmp_path / "backup"
    roots = [PurePosixPath("/etc/skutui")]
    local = PurePosixPath("/etc/skutui/local")
    (top / "etc/skutui/local").mkdir(parents=True)
    (top / "etc/skutui/local/id_ed25519").write_text("private\n")
    (top / "etc/skutui/app.conf").write_text("app\n")
    (top / "etc/shadow").write_text("root:x\n")
    (top / "etc/skutui/conf.d").symlink_to(top / "etc")
    assert base64.b64decode(read_synced({"path": "/etc/skutui/app.conf"}, roots, under=top,
                                        own_excluded=(local,))["data"]) == b"app\n"
    refused = read_synced({"path": "/etc/skutui/conf.d/shadow"}, roots, under=top,
                          own_excluded=(local,))
    assert refused == {"refused": f"/etc/skutui/conf.d/shadow: /etc/skutui/conf.d is a "
                                  f"symbolic link (to {top / 'etc'}); skutui never follows one "
                                  "here"}
    for path in ("/etc/skutui/local/id_ed25519", "/etc/shadow"):
        with pytest.raises(SyncError):
            read_synced({"path": path}, roots, under=top, own_excluded=(local,))


def test_node_sync_put_answers_a_line_for_each_line(tmp_path, monkeypatch):
    """The kept writer: a bad line is answered with an error, and the next still works."""
    paths = node_paths(tmp_path)
    monkeypatch.setattr("skutui.cli.node.own_synced_roots",
                        lambda paths: [PurePosixPath(tmp_path / "etc" / "skutui")])
    target = str(tmp_path / "etc" / "skutui" / "app.conf")
    lines = ["{}", "not json", json.dumps({"path": target, "stage": "0123456789abcdef",
                                           "data": base64.b64encode(b"x").decode()})]
    code, out, err = run_skutui(["node", "sync-put"], {"SKUTUI_ROOT": str(paths.config_root)},
                                "\n".join(lines) + "\n")
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and answers[0] == {} and "error" in answers[1], (out, err)
    assert answers[2]["staged"].startswith(str(tmp_path / "etc" / "skutui" / ".app.conf."))


# --- the key rotation, on this node ---------------------------------------------------------------


def test_a_new_key_waits_beside_the_old_until_it_is_taken(tmp_path):
    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    old = ensure_key(paths.private_key)
    new = new_key(paths)
    assert new != old and ensure_key(paths.private_key) == old, "the key in use is untouched"
    assert stat.S_IMODE(paths.new_private_key.stat().st_mode) == 0o600
    assert commit_key(paths) == (old, new)
    assert ensure_key(paths.private_key) == new and not paths.new_private_key.exists()
    assert Path(f"{paths.private_key}.pub").read_text().strip() == new
    with pytest.raises(FileNotFoundError, match="no new key to take"):
        commit_key(paths)
    # A public half left behind (an interrupted rotation) is the private key's own again.
    Path(f"{paths.private_key}.pub").write_text(old + "\n")
    assert ensure_key(paths.private_key).split()[:2] == new.split()[:2]


def test_authorize_key_step_allows_the_key_and_then_it_alone(tmp_path):
    paths = node_paths(tmp_path)
    old, new = public_key("skutui@node-b"), public_key("skutui@node-b")
    paths.authorized_keys.parent.mkdir(parents=True)
    paths.authorized_keys.write_text(f"{ADMIN}\n{bare(old)}\n")
    environ = {"SKUTUI_ROOT": str(paths.config_root)}
    with mock.patch("skutui.domain.paths.Paths.from_env", return_value=paths):
        code, out, err = run_skutui(["node", "authorize-key", "--from", PEER_IP], environ, new)
        assert (code, out) == (0, "authorized\n"), err
        bodies = [trust.parse_line(x).body for x in paths.authorized_keys.read_text().splitlines()]
        assert bodies == [ADMIN.split()[1], old.split()[1], new.split()[1]]
        code, out, err = run_skutui(["node", "authorize-key", "--from", PEER_IP, "--only",
                                     "--replacing", old.split()[1]], environ, new)
        assert code == 0, err
        assert paths.authorized_keys.read_text() == (
            f"{ADMIN}\n{trust.key_line(new, PEER_IP, COMMENT)}\n")
        code, out, err = run_skutui(["node", "authorize-key", "--from", PEER_IP], environ,
                                    "not a key")
        assert code == 2 and "not an OpenSSH public key" in err and len(err.splitlines()) == 1
