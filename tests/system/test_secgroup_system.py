"""Security groups on real traffic between network namespaces.

Three "VMs" (namespaces on veth, afpacket ports of br-int) in one subnet:
web (10.7.0.2) takes TCP 80 from anyone and TCP 8080 from members of group
"app"; app (10.7.0.3) is in "app"; other (10.7.0.4) is in no group that
allows anything in. Everybody may connect out (egress any). What the issue
asks, with real sockets: allowed ingress connects, denied ingress is blocked,
replies to allowed egress come back, an established connection whose rule is
removed is cut and its conntrack entry flushed, a spoofed source is dropped,
a remote-group membership change updates access.
"""

import json
import os
import subprocess
import time

import pytest

from pyvswitch.tools.lab import Lab, tool

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

VMS = {"web": ("10.7.0.2", "fa:16:3e:07:00:02"), "app": ("10.7.0.3", "fa:16:3e:07:00:03"),
       "other": ("10.7.0.4", "fa:16:3e:07:00:04")}
SERVER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        def echo(c):
            while True:
                d = c.recv(100)
                if not d: break
                c.sendall(d)
        threading.Thread(target=echo, args=(c,), daemon=True).start()
for p in (80, 8080, 22):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
CLIENT = r"""
import socket, sys, time
s = socket.socket(); s.settimeout(2.0)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"hi"); assert s.recv(10) == b"hi"
    if len(sys.argv) > 3:        # keep the connection: talk once a second, report each echo
        for i in range(int(sys.argv[3])):
            time.sleep(1)
            s.sendall(b"x"); print("echo" if s.recv(10) == b"x" else "bad", flush=True)
    print("ok")
except Exception as e:
    print("fail", type(e).__name__)
"""


@pytest.fixture(scope="module")
def net():
    lab = Lab(prefix="psg")
    try:
        run = lab.tempdir("run")
        env = dict(os.environ, PVS_RUNDIR=run)
        lab.start_daemon(run, env=env)

        def cli(*args, ok=True, inp=None):
            r = subprocess.run([tool(args[0]), *args[1:]], env=env, capture_output=True, text=True,
                               timeout=300, input=inp)
            if ok:
                assert r.returncode == 0, f"{args}: {r.stderr}"
            return r

        cli("pvs-vsctl", "--timeout=900", "add-br", "br-int", "--", "set", "bridge", "br-int",
            "datapath_type=netdev")
        ns = {}
        for i, (name, (ip, mac)) in enumerate(VMS.items()):
            ns[name] = lab.netns(name)
            link = lab.veth_to_ns(f"psg-{name}", ns[name], ip=f"{ip}/24", mac=mac)
            cli("pvs-vsctl", "add-port", "br-int", link, "--", "set", "Interface", link, "type=afpacket",
                f"ofport_request={i + 1}")
        for name, (ip, mac) in VMS.items():        # static neighbours: ARP is not what is tested
            for other, (oip, omac) in VMS.items():
                if other != name:
                    subprocess.run(["ip", "-n", ns[name], "neigh", "replace", oip, "lladdr", omac,
                                    "dev", "eth0", "nud", "permanent"], check=True)
        model = {"bridge": "br-int",
                 "groups": {"web": [{"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 80},
                                    {"direction": "ingress", "protocol": "tcp", "port_min": 8080,
                                     "port_max": 8080, "remote_group": "app"},
                                    {"direction": "ingress", "protocol": "icmp"},
                                    {"direction": "egress"}],
                            "app": [{"direction": "egress"}, {"direction": "ingress", "protocol": "icmp"}],
                            "closed": [{"direction": "egress"}]},
                 "ports": {f"psg-{n}": {"mac": mac, "ips": [ip], "groups": [g]}
                           for n, (ip, mac), g in zip(VMS, VMS.values(), ("web", "app", "closed"))}}
        r = cli("pvs-secgroup", "import", "-", inp=json.dumps(model))
        assert "flows on br-int" in r.stdout
        server = subprocess.Popen(["ip", "netns", "exec", ns["web"], os.sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        lab.track(server.pid)
        assert server.stdout.readline().strip() == "ready"
        yield lab, cli, ns
    finally:
        lab.close()


def connect(ns, vm, port, keep=0):
    r = subprocess.run(["ip", "netns", "exec", ns[vm], os.sys.executable, "-c", CLIENT, VMS["web"][0],
                        str(port), *( [str(keep)] if keep else [])], capture_output=True, text=True, timeout=60)
    return r.stdout.split()


def test_allowed_and_denied_ingress(net):
    lab, cli, ns = net
    assert connect(ns, "other", 80)[-1] == "ok"          # tcp/80 from anyone
    assert connect(ns, "other", 8080)[0] == "fail"       # 8080 only from group app
    assert connect(ns, "app", 8080)[-1] == "ok"
    assert connect(ns, "app", 22)[0] == "fail"           # nothing allows 22
    web = cli("pvs-appctl", "dpctl/dump-conntrack", "zone=1").stdout     # web's own zone
    assert ",dport=80)" in web and ",dport=8080)" in web and ",dport=22)" not in web
    app = cli("pvs-appctl", "dpctl/dump-conntrack", "zone=2").stdout     # app's egress was allowed
    assert ",dport=22)" in app


def test_replies_to_egress_and_ping(net):
    lab, cli, ns = net
    r = subprocess.run(["ip", "netns", "exec", ns["web"], "ping", "-c", "2", "-W", "1", VMS["app"][0]],
                       capture_output=True, text=True)
    assert r.returncode == 0                              # egress from web, replies come back
    r = subprocess.run(["ip", "netns", "exec", ns["other"], "ping", "-c", "1", "-W", "1", VMS["app"][0]],
                       capture_output=True, text=True)
    assert r.returncode == 0                              # app takes icmp from anyone


def test_spoofed_source_is_dropped(net):
    lab, cli, ns = net
    subprocess.run(["ip", "-n", ns["other"], "addr", "add", "10.7.0.99/24", "dev", "eth0"], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", ns["other"], "ping", "-c", "1", "-W", "1",
                            "-I", "10.7.0.99", VMS["web"][0]], capture_output=True, text=True)
        assert r.returncode != 0
    finally:
        subprocess.run(["ip", "-n", ns["other"], "addr", "del", "10.7.0.99/24", "dev", "eth0"])


def test_removing_a_rule_cuts_its_connection(net):
    lab, cli, ns = net
    # a long connection from app on 8080, then the 8080 rule goes
    p = subprocess.Popen(["ip", "netns", "exec", ns["app"], os.sys.executable, "-c", CLIENT, VMS["web"][0],
                          "8080", "6"], stdout=subprocess.PIPE, text=True)
    lab.track(p.pid)
    assert p.stdout.readline().strip() == "echo"          # established and talking
    show = cli("pvs-secgroup", "show").stdout
    idx = next(line.split("]")[0].strip(" [") for line in show.splitlines() if "port=8080" in line)
    r = cli("pvs-secgroup", "rule-del", "web", idx)
    assert "1 connection(s) flushed" in r.stdout or "connection(s) flushed" in r.stdout
    assert ",dport=8080)" not in cli("pvs-appctl", "dpctl/dump-conntrack", "zone=1").stdout
    rest = p.communicate(timeout=30)[0].split()
    assert "fail" in rest                                 # the next echo never came back
    assert connect(ns, "app", 8080)[0] == "fail"
    assert connect(ns, "other", 80)[-1] == "ok"           # the others are unaffected


def test_membership_change_updates_access(net):
    lab, cli, ns = net
    cli("pvs-secgroup", "rule-add", "web", "ingress", "protocol=tcp", "port=22", "remote=group:app")
    assert connect(ns, "app", 22)[-1] == "ok"
    assert connect(ns, "other", 22)[0] == "fail"
    cli("pvs-secgroup", "port-set", "psg-other", "groups=closed,app")
    assert connect(ns, "other", 22)[-1] == "ok"
    bad = cli("pvs-secgroup", "rule-add", "web", "sideways", ok=False)
    assert bad.returncode != 0 and "direction" in bad.stderr
