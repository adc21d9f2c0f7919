"""Configure: no cluster yet, so the operator describes one and this node creates it.

The steps after Apply happen in the open and in order (host key, pre-flight, the erase
warning, creation), each waiting for the operator where a decision is theirs.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from skutui.domain import validation
from skutui.domain.model import (
    DEFAULT_CHECK_INTERVAL,
    FAILBACK_DISABLED,
    TRANSPORT_UNICAST,
    TRANSPORTS,
    InterfaceAddress,
)
from skutui.domain.settings import HEARTBEAT_TRANSPORT, Context
from skutui.domain.wire import CreateRequest
from skutui.ui.errors import describe
from skutui.ui.forms import FormCheck
from skutui.ui.screens.base import SERVICE_KEYS, FormScreen, service_fields
from skutui.ui.state import ClusterView, failback_options
from skutui.ui.widgets.fields import ActionButton, Choice, SecretField, TextField

if TYPE_CHECKING:
    from skutui.cluster.api import ClusterService

    # A screen's module (and its styles) is read when the screen is first shown.
    from skutui.ui.screens.steps import StepsScreen

READING_ADDRESSES = "reading this node's addresses..."
NO_ADDRESS = (
    "No address on this node can carry the cluster: configure an address on a "
    "physical interface (aliases such as eth0:1 are not offered), then restart the console."
)


def offered_addresses(candidates: list[InterfaceAddress]) -> list[InterfaceAddress]:
    """Aliases (eth0:1) and loopback are never offered: the peer must show the cluster IP
    on the same interface name, and an alias is usually a floating IP added by hand."""
    return [a for a in candidates if not a.is_alias and not a.loopback]


class ConfigureScreen(FormScreen):
    SUB_TITLE = "Configure the cluster"
    BINDINGS = [Binding("f2", "apply", "Apply", id="configure.apply")]

    def __init__(self, view: ClusterView, candidates: list[InterfaceAddress] | None = None):
        """Without ``candidates`` the form is drawn at once and the addresses fill in when
        read: discovering them loads the netlink library, which takes longer than drawing."""
        super().__init__()
        self.view = view
        self.candidates = None if candidates is None else offered_addresses(candidates)

    @property
    def ready(self) -> bool:
        """True once this node's addresses are read (or could not be)."""
        return self.candidates is not None

    def compose_body(self) -> ComposeResult:
        text = self.app.profile.text
        yield Static(
            text(
                f"No cluster is configured on {self.view.hostname}. Describe it below: this node "
                "becomes the master, the peer becomes the backup."
            ),
            id="intro",
            markup=False,
        )
        if self.candidates == []:
            yield Static(NO_ADDRESS, classes="problem", markup=False)
        else:
            options, chosen = self.address_options()
            yield Choice(options, chosen, vertical=True, id="local_ip", label="Local IP", placeholder=READING_ADDRESSES)
        yield TextField(placeholder="the peer's cluster address", label="Remote IP", id="remote_ip")
        yield SecretField(placeholder="the peer's; used once to install keys", label="Remote root password",
                          id="password")
        yield SecretField(placeholder="type it again", label="Confirm password", id="confirmation")
        yield TextField(placeholder="optional: 198.18.0.100/24, ... (comma separated)", label="Floating IPs",
                        id="floating_ips")
        yield TextField(f"{DEFAULT_CHECK_INTERVAL:g}", placeholder="seconds, 0.1 to 40", label="Check interval (s)",
                        id="check_interval")
        yield Choice(failback_options(text(self.view.hostname), None), FAILBACK_DISABLED, vertical=True,
                     label="Failback", id="failback")
        yield Choice([(name, name) for name in TRANSPORTS], TRANSPORT_UNICAST, label=HEARTBEAT_TRANSPORT.label,
                     id="heartbeat_transport")
        yield from service_fields("", "", "")
        yield ActionButton("Apply", id="apply", disabled=self.candidates == [], action="screen.apply")

    def address_options(self) -> tuple[list[tuple[str, str]], str | None]:
        """The Local IP choices, and the one chosen already when there is only one."""
        options = [(f"{a.interface:<10} {a.address}/{a.prefixlen}", a.address) for a in self.candidates or ()]
        return options, (options[0][1] if len(options) == 1 else None)

    def on_mount(self) -> None:
        self.say("Tab moves between fields; F2 or the Apply button starts the checks.")
        if self.candidates is None:
            self.read_candidates()

    @work(exclusive=True, group="candidates", exit_on_error=False)
    async def read_candidates(self) -> None:
        await self.app.preloaded()
        self.show_candidates(offered_addresses(await self.app.service.cluster_candidates()))

    def show_candidates(self, candidates: list[InterfaceAddress], problem: str = NO_ADDRESS) -> None:
        self.candidates = candidates
        choice = self.query_one("#local_ip", Choice)
        choice.show_error(None)  # "still being read", from an Apply before they came
        if candidates:
            choice.set_options(*self.address_options())
            return
        self.query_one("#body").mount(Static(problem, classes="problem", markup=False), before=choice)
        choice.remove()
        self.query_one("#apply", ActionButton).disabled = True
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Addresses that cannot be read leave nothing to choose: said where the choice was."""
        if event.worker.group == "candidates" and event.state == WorkerState.ERROR:
            event.prevent_default()
            self.show_candidates(
                [], f"Could not read this node's addresses: {describe(event.worker.error)} "
                "Restart the console to try again."
            )
            return
        super().on_worker_state_changed(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "apply" and self.candidates == [])

    def read_request(self) -> CreateRequest | None:
        """The request the form describes, or None after marking what is wrong."""
        value = self.field_value
        check = FormCheck()
        candidates = self.candidates
        if candidates is None:
            check.errors["local_ip"] = "This node's addresses are still being read; apply again in a moment."
            local = None
        elif value("local_ip") is None:
            check.errors["local_ip"] = "Choose this node's cluster address in the list (arrow keys)."
            local = None
        else:
            local = check("local_ip", lambda: validation.local_ip(value("local_ip"), candidates).address)
        if local is None:
            remote = check("remote_ip", lambda: validation.ip_address(value("remote_ip"), "remote_ip"))
        else:
            remote = check("remote_ip", lambda: validation.remote_ip(value("remote_ip"), local))
        password = check("password", lambda: validation.passwords(value("password"), value("confirmation")))
        context = Context(local=self.view.hostname, node_ips=tuple(ip for ip in (local, remote) if ip))
        chosen = {key: self.read_setting(check, key, context)
                  for key in ("floating_ips", "check_interval", "failback", "heartbeat_transport", *SERVICE_KEYS)}
        check("services_on_both", lambda: validation.services_listed_once(
            chosen["services"] or (), chosen["services_on_both"] or ()))
        self.show_errors(check.errors)
        if not check.ok or local is None or remote is None or password is None:  # None only beside an error
            return None
        return CreateRequest(local_ip=local, remote_ip=remote, password=password, settings=chosen)

    def action_apply(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.steps import StepsScreen

        request = self.read_request()
        if request is None:
            return
        job = partial(create_cluster, service=self.app.service, request=request, hostname=self.view.hostname)
        self.app.push_screen(
            StepsScreen("Creating the cluster", job, on_success=self.app.open_home, back_hint="go back to the form")
        )


async def create_cluster(
    steps: StepsScreen, *, service: ClusterService, request: CreateRequest, hostname: str
) -> str | None:
    # A screen's module (and its styles) is read when the screen is first shown.
    from skutui.ui.screens.dialogs import ConfirmDialog

    remote = request.remote_ip
    steps.line(f"Asking {remote} for its SSH host key...")
    fingerprint = await service.fetch_host_key(remote)
    steps.line(f"Host key of {remote}: {fingerprint}")
    accepted = await steps.confirm(
        ConfirmDialog(
            "Accept the peer's host key?",
            f"The peer {remote} presents this SSH host key:\n\n  {fingerprint}\n\n"
            "Compare it with the key the peer itself shows (on the peer: "
            "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). skutui pins this key and "
            "refuses the peer if it ever changes.",
            yes="Accept the key",
            no="Reject",
        )
    )
    if not accepted:
        steps.line("Host key rejected: skutui did not log in to the peer.")
        return None
    steps.line("Host key accepted.")
    request = replace(request, host_key_fingerprint=fingerprint)

    steps.line("Pre-flight checks:")
    results = await service.preflight(request, steps.progress)
    for result in results:
        steps.check(result)
    failed = sum(not result.passed for result in results)
    if failed:
        steps.line(f"{failed} of {len(results)} checks failed: fix what is marked FAIL, then apply again.")
        return None

    erase = await steps.confirm(
        ConfirmDialog(
            f"ERASE the configuration of {remote}?",
            f"The existing configuration of the peer {remote} will be ERASED and replaced by a "
            f"copy of this node's ({hostname}); {remote} becomes the backup.\n\n"
            f"Whatever is configured only on {remote} is lost. This cannot be undone.",
            yes=f"Erase {remote} and create",
            no="Stop here",
            danger=True,
        )
    )
    if not erase:
        steps.line(f"Erase not confirmed: nothing was changed on {remote} or here.")
        return None

    steps.line("Creating the cluster:")
    await service.create(request, steps.progress)
    return f"Cluster created: {hostname} is the master, {remote} the backup."
