"""pvs-ofctl against Open vSwitch's ovs-ofctl 3.1, both talking OpenFlow to
the daemon's <bridge>.mgmt: the same command prints the same thing (durations
and ages aside), in OpenFlow 1.3 and 1.0, for flows (plain, --no-stats,
--sort/--rsort, --names), groups, meters, diff-flows; replace-flows by one
tool leaves what the other tool's diff-flows calls identical; errors from the
switch print ovs-ofctl's first line.
"""

import os
import re
import shutil
import subprocess

import pytest

from pyvswitch.tools.lab import Lab, tool
from tests.e2e.test_cli_dummy import Cli as _Cli

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="the bridge's internal port needs root and /dev/net/tun"),
    pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="ovs-ofctl not installed"),
]
BR = f"pvw{os.getpid() % 4096:03x}br"
FLOWS_10 = [                               # representable in OpenFlow 1.0 too
    "priority=5,in_port=1,actions=output:2",
    "table=1,priority=7,actions=drop",
    "cookie=0x3,priority=9,ip,actions=output:2",
    "idle_timeout=100,priority=4,tcp,tp_dst=80,actions=mod_nw_src:1.2.3.4,output:1",
    "priority=3,ip,nw_dst=10.0.0.0/8,actions=mod_dl_dst:00:00:00:00:00:05,output:2",
    "hard_timeout=200,importance=3,priority=6,in_port=2,dl_src=02:00:00:00:00:0b,actions=output:1",
]
FLOWS_13 = FLOWS_10 + [                    # OpenFlow 1.3 only (set_field, vlan, meter)
    "priority=8,tcp,actions=set_field:9->tcp_dst,mod_vlan_pcp:3,output:1",
    "priority=2,ip,actions=meter:1,set_field:1.2.3.4->ip_dst,mod_vlan_vid:5,group:6",
    "table=2,priority=1,udp,actions=set_field:00:00:00:00:00:01->eth_src,mod_tp_src:99,output:1",
]
STABLE = [                                 # spelled as they come back over 1.3
    "priority=5,in_port=1,actions=output:1",
    "table=1,priority=7,actions=drop",
    "table=4,cookie=0x9,priority=11,udp,tp_src=5,actions=output:2",
    "priority=8,tcp,actions=set_field:10->tcp_dst,output:1",
]
GROUPS = ["group_id=5,type=all,bucket=output:2",
          "group_id=6,type=select,bucket=weight:5,output:1,bucket=weight:7,"
          "mod_dl_src:00:00:00:00:00:07,output:2",
          "group_id=7,type=ff,bucket=watch_port:1,output:1"]
METERS = ["meter=1,pktps,burst,stats,band=type=drop,rate=10,burst_size=5",
          "meter=2,kbps,band=type=dscp_remark,rate=1000,prec_level=1"]


class Cli(_Cli):
    """The e2e CLI runner with a generous timeout: on a cold numba cache the
    daemon compiles its kernels on the first reconfiguration."""

    def __call__(self, *args, ok=True):
        r = subprocess.run([tool(args[0])] + list(args[1:]), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=900)
        if ok:
            assert r.returncode == 0, f"{args}: {r.stderr}"
            return r.stdout
        return r


@pytest.fixture(scope="module")
def sw():
    lab = Lab(prefix="pvw")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    cli.target = "unix:" + os.path.join(rundir, f"{BR}.mgmt")
    cli.dir = lab.tempdir("files")
    try:
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", BR, "--", "set", "bridge", BR, "datapath_type=netdev",
            "--", "add-port", BR, "pa", "--", "set", "Interface", "pa", "type=dummy",
            "ofport_request=1",
            "--", "add-port", BR, "pb", "--", "set", "Interface", "pb", "type=dummy",
            "ofport_request=2")
        yield cli
    finally:
        lab.close()


_NOISE = [(re.compile(r"duration[=:][0-9.]+s"), "duration=D"),
          (re.compile(r"idle_age=[0-9]+"), "idle_age=A"),
          (re.compile(r"^(ovs|pvs)-ofctl: ", re.M), "X: ")]


def _norm(text):
    for rx, repl in _NOISE:
        text = rx.sub(repl, text)
    return text


def run(sw, tool, *args):
    prog = shutil.which("ovs-ofctl") if tool == "ovs" else None
    if prog:
        r = subprocess.run([prog, *args], capture_output=True, text=True, timeout=120)
    else:
        r = sw("pvs-ofctl", *args, ok=False)
    return r.returncode, _norm(r.stdout), _norm(r.stderr)


def both(sw, *args):
    """(ovs-ofctl's, pvs-ofctl's) (status, stdout, stderr) for the same command."""
    return run(sw, "ovs", *args), run(sw, "pvs", *args)


def diff(ovs, pvs):
    """An assertion message: where the two outputs differ."""
    import difflib
    return "\n".join(difflib.unified_diff(
        (ovs[1] + ovs[2]).splitlines(), (pvs[1] + pvs[2]).splitlines(), "ovs-ofctl",
        "pvs-ofctl", lineterm="")) + f"\nstatus {ovs[0]} vs {pvs[0]}"


def write(sw, name, lines):
    path = os.path.join(sw.dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def setup(sw, flows):
    t = sw.target
    sw("pvs-ofctl", "del-groups", t)
    sw("pvs-ofctl", "del-meters", t)
    for g in GROUPS:
        sw("pvs-ofctl", "add-group", t, g)
    for m in METERS:
        sw("pvs-ofctl", "add-meter", t, m)
    sw("pvs-ofctl", "replace-flows", t, write(sw, "flows.txt", flows))


COMMANDS = [
    ("show",), ("dump-flows",), ("dump-flows", "table=1"), ("dump-flows", "in_port=1"),
    ("--no-stats", "dump-flows"), ("--sort", "dump-flows"), ("--rsort", "dump-flows"),
    ("--sort=in_port", "--rsort=nw_src", "dump-flows"), ("--rsort=tp_dst", "dump-flows"),
    ("--names", "dump-flows"), ("--names", "--no-stats", "dump-flows"),
    ("dump-aggregate",), ("dump-aggregate", "table=1"), ("dump-ports-desc",),
    ("dump-groups",), ("dump-groups", "7"), ("--names", "dump-groups"),
    ("dump-group-stats",), ("dump-group-stats", "group_id=6"),
    ("dump-meters",), ("dump-meters", "meter=2"), ("meter-stats",), ("meter-stats", "meter=1"),
]


@pytest.mark.parametrize("proto", ["OpenFlow13", "OpenFlow10"])
def test_same_output_as_ovs_ofctl(sw, proto):
    setup(sw, FLOWS_13 if proto == "OpenFlow13" else FLOWS_10)
    for cmd in COMMANDS:
        args = [a for a in cmd if a.startswith("-")]
        rest = [a for a in cmd if not a.startswith("-")]
        ovs, pvs = both(sw, "-O", proto, *args, rest[0], sw.target, *rest[1:])
        assert ovs == pvs, f"{proto} {cmd}\n{diff(ovs, pvs)}"
        meters = "meter" in rest[0]
        if proto == "OpenFlow13" or not meters:      # 1.0: both refuse meters alike
            assert ovs[0] == 0 and ovs[1], (proto, cmd, ovs)


@pytest.mark.parametrize("proto", ["OpenFlow13", "OpenFlow10"])
def test_diff_flows_same_as_ovs_ofctl(sw, proto):
    flows = FLOWS_13 if proto == "OpenFlow13" else FLOWS_10
    setup(sw, flows)
    other = write(sw, "other.txt", flows[:2] + [
        "priority=5,in_port=1,actions=output:1",            # changed
        "table=3,priority=7,actions=drop",                  # only here
        "cookie=0x3,priority=9,ip,actions=output:2,output:1"])
    for args in ([sw.target, other], [other, sw.target],
                 [other, write(sw, "same.txt", flows)]):
        ovs, pvs = both(sw, "-O", proto, "diff-flows", *args)
        assert ovs == pvs and ovs[0] == 2 and ovs[1], f"{args}\n{diff(ovs, pvs)}"
    # the switch against the file it was set from: the actions are compared as
    # text, and e.g. mod_nw_src comes back from 1.3 as a set_field: both tools
    # see the same differences
    ovs, pvs = both(sw, "-O", proto, "diff-flows", sw.target,
                    os.path.join(sw.dir, "flows.txt"))
    assert ovs == pvs, diff(ovs, pvs)


@pytest.mark.parametrize("tools", [("pvs", "ovs"), ("ovs", "pvs")])
def test_replace_flows_agrees_with_the_other_diff_flows(sw, tools):
    setup(sw, FLOWS_13)
    new = write(sw, "new.txt", STABLE)
    status, out, err = run(sw, tools[0], "-O", "OpenFlow13", "replace-flows", sw.target, new)
    assert status == 0, err
    assert run(sw, tools[1], "-O", "OpenFlow13", "diff-flows", sw.target, new) == (0, "", "")
    dump = run(sw, "pvs", "--no-stats", "dump-flows", sw.target)[1]
    assert dump.count("actions=") == 4 and "table=4, cookie=0x9" not in dump


def test_counters_survive_replace_flows(sw):
    """Unchanged flows are left alone (ovs-ofctl's replace-flows sends nothing
    for them), so their counters go on."""
    import time
    setup(sw, FLOWS_13)
    sw("pvs-appctl", "netdev-dummy/receive", "pa", ("02" * 6 + "0a" * 6 + "88b5").ljust(120, "0"))
    deadline = time.time() + 60               # the revalidator credits once a second
    while True:
        before = [ln for ln in sw("pvs-ofctl", "dump-flows", sw.target).splitlines()
                  if "in_port=1 " in ln]
        if "n_packets=1," in before[0] or time.time() > deadline:
            break
        time.sleep(0.2)
    assert "n_packets=1," in before[0]
    sw("pvs-ofctl", "replace-flows", sw.target, os.path.join(sw.dir, "flows.txt"))
    after = [ln for ln in sw("pvs-ofctl", "dump-flows", sw.target).splitlines()
             if "in_port=1 " in ln]
    assert [_norm(x) for x in before] == [_norm(x) for x in after]


@pytest.mark.parametrize("proto", ["OpenFlow13", "OpenFlow10"])
def test_switch_errors_print_like_ovs_ofctl(sw, proto):
    setup(sw, FLOWS_10)
    t = sw.target
    cmds = [["add-group", t, GROUPS[0]],                       # exists
            ["mod-group", t, "group_id=99,type=all,bucket=output:1"],
            ["add-flow", t, "priority=1,actions=meter:7,output:1"]]
    if proto == "OpenFlow13":       # no 1.0 encoding of the group action here yet
        cmds.append(["add-flow", t, "priority=1,actions=group:77"])
    if proto == "OpenFlow10":
        cmds.pop()                  # (nor meters in 1.0)
    for cmd in cmds:
        ovs, pvs = both(sw, "-O", proto, *cmd)
        assert ovs[0] == pvs[0] == 1, (cmd, ovs, pvs)
        assert ovs[2].splitlines()[0] == pvs[2].splitlines()[0], (cmd, ovs, pvs)


def test_meters_need_openflow13_groups_do_not(sw):
    setup(sw, FLOWS_10)
    for cmd in (["add-meter", sw.target, "meter=3,pktps,band=type=drop,rate=1"],
                ["dump-meters", sw.target], ["meter-stats", sw.target],
                ["del-meters", sw.target]):
        ovs, pvs = both(sw, "-O", "OpenFlow10", *cmd)
        assert ovs == pvs and ovs[0] == 1 and "usable flow formats" in ovs[2], \
            f"{cmd}\n{diff(ovs, pvs)}"
    # groups in 1.0: ovs-ofctl 3.1 uses Nicira extensions, and so does pvs-ofctl
    assert run(sw, "pvs", "-O", "OpenFlow10", "add-group", sw.target,
               "group_id=9,type=indirect,bucket=output:2")[0] == 0
    assert "group_id=9,type=indirect,bucket=bucket_id:0,actions=output:2" in \
        run(sw, "ovs", "-O", "OpenFlow10", "dump-groups", sw.target)[1]
    assert run(sw, "pvs", "-O", "OpenFlow10", "del-groups", sw.target, "group_id=9")[0] == 0
    assert "group_id=9" not in run(sw, "ovs", "-O", "OpenFlow13", "dump-groups", sw.target)[1]


def test_tcp_target(sw):
    """The same commands through a ptcp: listener."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sw("pvs-vsctl", "set-controller", BR, f"ptcp:{port}:127.0.0.1")
    try:
        t = f"tcp:127.0.0.1:{port}"
        setup(sw, FLOWS_13)
        import time
        deadline = time.time() + 60
        while run(sw, "pvs", "show", t)[0] and time.time() < deadline:
            time.sleep(0.1)
        for cmd in (["dump-groups", t], ["dump-group-stats", t], ["dump-meters", t],
                    ["--sort", "dump-flows", t], ["--no-stats", "dump-flows", t]):
            ovs, pvs = both(sw, "-O", "OpenFlow13", *cmd)
            assert ovs == pvs and ovs[0] == 0, f"{cmd}\n{diff(ovs, pvs)}"
        stable = write(sw, "stable.txt", STABLE)
        assert run(sw, "pvs", "replace-flows", t, stable)[0] == 0
        assert run(sw, "ovs", "-O", "OpenFlow13", "diff-flows", t, stable) == (0, "", "")
    finally:
        sw("pvs-vsctl", "del-controller", BR)
