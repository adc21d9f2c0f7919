import dataclasses
import os
import stat
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skutui.domain import codec
from skutui.domain.codec import ConfigError
from skutui.domain.errors import ValidationError
from skutui.domain.model import ClusterConfig, Node
from skutui.system import files, store

CFG = ClusterConfig(
    interface="eth0",
    nodes=(Node("node-a", "198.18.0.1"), Node("lb2.example.com", "198.18.0.2")),
    check_interval=0.5,
    failback="node-a",
    tracked_interfaces=("eth1",),
    floating_ips=("198.18.0.100/24", "2001:db8::100/64"),
    synced_paths=("/etc/haproxy",),
    services=("haproxy",),
    virtual_router_id=42,
)

GOOD = """\
schema_version = 1
interface = "eth0"
check_interval = 1
failback = "disabled"
virtual_router_id = 51
floating_ips = ["198.18.0.100/24"]

[nodes."node-a"]
ip = "198.18.0.1"

[nodes."node-b"]
ip = "198.18.0.2"
"""


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_round_trip(tmp_path):
    path = tmp_path / "cluster.toml"
    store.save(CFG, path)
    assert store.load(path) == CFG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_dumps_layout():
    text = codec.dumps(CFG)
    assert text.startswith("#")
    document = tomllib.loads(text)
    assert document["schema_version"] == 1
    assert document["nodes"] == {"node-a": {"ip": "198.18.0.1"}, "lb2.example.com": {"ip": "198.18.0.2"}}
    assert '[nodes."lb2.example.com"]' in text
    assert list(document) == [
        "schema_version", "interface", "heartbeat_transport", "failback", "check_interval", "tracked_interfaces",
        "floating_ips", "synced_paths", "services", "services_on_both", "virtual_router_id", "webhook_url",
        "metrics_file", "nodes",
    ]


def test_to_dict_is_the_toml_document():
    assert codec.to_dict(CFG) == tomllib.loads(codec.dumps(CFG))
    assert codec.to_dict(CFG)["floating_ips"] == ["198.18.0.100/24", "2001:db8::100/64"]


def test_loads_defaults_and_normalises():
    cfg = codec.loads(GOOD)
    assert cfg.check_interval == 1.0 and isinstance(cfg.check_interval, float)
    assert cfg.tracked_interfaces == () and cfg.services == ()
    minimal = GOOD.replace("check_interval = 1\n", "").replace('failback = "disabled"\n', "")
    assert codec.loads(minimal.replace("virtual_router_id = 51\n", "")) == cfg


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda name: name not in {"disabled", "local", "remote"}
)


@settings(max_examples=60)
@given(
    first=hosts,
    second=hosts,
    centiseconds=st.integers(10, 4000),
    vrid=st.integers(1, 255),
    last_octets=st.lists(st.integers(1, 254), unique=True, max_size=4),
    prefer_first=st.booleans(),
)
def test_round_trip_property(first, second, centiseconds, vrid, last_octets, prefer_first):
    if first == second:
        return
    cfg = ClusterConfig(
        interface="eth0",
        nodes=(Node(first, "10.0.0.1"), Node(second, "10.0.0.2")),
        check_interval=centiseconds / 100,
        failback=first if prefer_first else "disabled",
        floating_ips=tuple(f"10.1.0.{n}/24" for n in last_octets),
        virtual_router_id=vrid,
    )
    assert codec.loads(codec.dumps(cfg)) == cfg


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("check_interval = 1", "check_interval = 50"), 3, "Check interval 50 is out of range"),
        (GOOD.replace("check_interval = 1", 'check_interval = "1"'), 3, "check_interval must be a number"),
        (GOOD.replace("check_interval = 1", "check_interval = true"), 3, "not a boolean"),
        (GOOD.replace("schema_version = 1", "schema_version = 7"), 1, "schema_version 7"),
        (GOOD.replace("virtual_router_id = 51", "virtual_router_id = 300"), 5, "Virtual router ID 300"),
        (GOOD.replace('failback = "disabled"', 'failback = "node-c"'), 4, "node-c"),
        (GOOD.replace('floating_ips = ["198.18.0.100/24"]', "floating_ips = [1]"), 6, "must hold only text"),
        (GOOD + "colour = 'red'\n", 13, "unknown key 'colour'"),
        (GOOD.replace('ip = "198.18.0.2"', 'ip = "198.18.0.1"'), 12, "Both nodes have the cluster IP"),
        (GOOD.replace('ip = "198.18.0.2"', 'ip = "198.18.0.x"'), 12, "198.18.0.x"),
        (GOOD.replace('ip = "198.18.0.2"', 'address = "198.18.0.2"'), 12, "unknown key 'address'"),
        (GOOD.replace('ip = "198.18.0.2"\n', ""), 11, "has no 'ip' key"),
        (GOOD.replace('[nodes."node-b"]\nip = "198.18.0.2"\n', ""), 8, "exactly two"),
        (GOOD.replace('interface = "eth0"\n', ""), None, "'interface' is missing"),
    ],
)
def test_bad_values_name_key_and_line(text, line, words):
    with pytest.raises(ConfigError) as caught:
        codec.loads(text, source="/etc/skutui/cluster.toml")
    error = caught.value
    assert error.line == line
    assert words in str(error)
    prefix = "/etc/skutui/cluster.toml" + (f", line {line}: " if line else ": ")
    assert str(error).startswith(prefix)


def test_syntax_error_gives_line_and_column():
    text = GOOD.replace('interface = "eth0"', 'interface = "eth0')
    with pytest.raises(ConfigError) as caught:
        codec.loads(text, source="cluster.toml")
    assert (caught.value.line, caught.value.column) == (2, 18)
    assert str(caught.value).startswith("cluster.toml, line 2, column 18: TOML syntax error")


def test_syntax_error_at_end_of_file():
    with pytest.raises(ConfigError) as caught:
        codec.loads("interface = ", source="cluster.toml")
    assert caught.value.line == 1
    assert "end of the file" in str(caught.value)


def test_node_table_written_as_dotted_keys_is_located():
    text = GOOD.replace('[nodes."node-b"]\nip = "198.18.0.2"\n', "").replace(
        "[nodes.", 'nodes.node-b.ip = "bad"\n[nodes.'
    )
    with pytest.raises(ConfigError) as caught:
        codec.loads(text)
    assert caught.value.line == 8


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        store.load(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'interface = "eth0"\n\xff\n')
    with pytest.raises(ConfigError) as caught:
        store.load(binary)
    assert caught.value.line == 2 and "UTF-8" in str(caught.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        store.load(tmp_path)


# atomic writes


@pytest.fixture
def existing(tmp_path):
    path = tmp_path / "cluster.toml"
    store.save(CFG, path)
    return path, path.read_bytes()


@pytest.mark.parametrize("failing", ["write", "fsync", "replace", "fchmod"])
def test_failed_write_keeps_old_file(existing, monkeypatch, failing):
    path, before = existing

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, failing, broken)
    new = dataclasses.replace(CFG, check_interval=2.0)
    with pytest.raises(ConfigError) as caught:
        store.save(new, path)
    assert str(caught.value) == f"{path}: the file cannot be written: No space left on device."
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_interrupted_write_keeps_old_file(existing, monkeypatch):
    path, before = existing
    real_write = os.write

    def short_then_fail(fd, data):
        if len(data) > 10:
            return real_write(fd, data[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "write", short_then_fail)
    with pytest.raises(KeyboardInterrupt):
        files.write_text_atomic(path, "x" * 100)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_unserialisable_value_keeps_old_file(existing):
    path, before = existing
    bad = dataclasses.replace(CFG, tracked_interfaces=(object(),))
    with pytest.raises(ValidationError) as caught:
        store.save(bad, path)
    assert caught.value.field == "tracked_interfaces"
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_serialiser_failure_becomes_config_error(existing, monkeypatch):
    path, before = existing

    def refuse(document):
        raise TypeError("Object of type Decimal is not TOML serializable")

    monkeypatch.setattr(codec.tomli_w, "dumps", refuse)
    with pytest.raises(ConfigError, match="cannot be written"):
        store.save(CFG, path)
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_write_text_atomic_mode_and_replace(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text("old")
    path.chmod(0o644)
    files.write_text_atomic(path, "new\n", mode=0o640)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_write_bytes_atomic(tmp_path):
    path = tmp_path / "known_hosts"
    files.write_bytes_atomic(path, b"\x00\xffbinary")
    assert path.read_bytes() == b"\x00\xffbinary"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_text_atomic_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.write_text_atomic(tmp_path / "no" / "such" / "file", "x")
