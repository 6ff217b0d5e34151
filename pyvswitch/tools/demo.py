"""`make demo`: pyvswitch switching real traffic between network namespaces.

Starts pvs-vswitchd in a temporary rundir, creates br0 and three namespaces
attached through veth pairs and afpacket ports (two on VLAN 10, one on VLAN
20, all in one IP subnet so only the switch keeps them apart), pings inside
VLAN 10 and across VLANs, and prints what an operator looks at. Everything is
removed at the end unless --keep is given.
"""

import argparse
import os
import subprocess
import sys

from pyvswitch.tools.lab import Lab, ping, tool

HOSTS = [  # namespace, switch-side veth, VLAN, address, MAC
    ("a", "pvsdemo-a", 10, "10.0.0.1", "02:00:00:00:00:0a"),
    ("b", "pvsdemo-b", 10, "10.0.0.2", "02:00:00:00:00:0b"),
    ("c", "pvsdemo-c", 20, "10.0.0.3", "02:00:00:00:00:0c"),
]


def step(title):
    print(f"\n=== {title}", flush=True)


def run(env, *args, show=True):
    cmd = [tool(args[0])] + list(args[1:])
    if show:
        print("$ " + " ".join(args), flush=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if show:
        sys.stdout.write(r.stdout)
        sys.stdout.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"demo: '{' '.join(args)}' failed with status {r.returncode}")
    return r.stdout


def build(lab, env):
    step("Start pvs-vswitchd and create br0")
    lab.start_daemon(env["PVS_RUNDIR"], env=env)
    print(f"pvs-vswitchd running, rundir {env['PVS_RUNDIR']}")
    run(env, "pvs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
    step("Three namespaces on veth pairs: a and b on VLAN 10, c on VLAN 20 (same IP subnet)")
    for name, veth, vlan, ip, mac in HOSTS:
        ns = lab.netns(name)
        lab.veth_to_ns(veth, ns, ip=f"{ip}/24", mac=mac)
        run(env, "pvs-vsctl", "add-port", "br0", veth, "tag=%d" % vlan,
            "--", "set", "Interface", veth, "type=afpacket")


def traffic(lab):
    a = f"{lab.prefix}-a"
    step("Ping inside VLAN 10: a -> b")
    ok_same, out = ping(a, "10.0.0.2", count=3)
    print(out.strip())
    step("Ping across VLANs: a -> c (the switch must not deliver it)")
    ok_cross, out = ping(a, "10.0.0.3", count=2)
    print(out.strip())
    return ok_same, ok_cross


def report(env):
    step("What the switch shows")
    run(env, "pvs-vsctl", "show")
    run(env, "pvs-ofctl", "--names", "dump-ports", "br0")
    run(env, "pvs-ofctl", "--names", "dump-flows", "br0")
    run(env, "pvs-appctl", "fdb/show", "br0")
    run(env, "pvs-appctl", "dpif-netdev/pmd-stats-show")
    run(env, "pvs-appctl", "dpctl/dump-flows")


def main(argv=None):
    p = argparse.ArgumentParser(prog="pvs-demo", description=__doc__.splitlines()[0])
    p.add_argument("--keep", action="store_true", help="leave the switch and namespaces running")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("demo: needs root (network namespaces, veth, AF_PACKET)")
    lab = Lab(prefix="pvsdemo")
    rundir = lab.tempdir("run") if not a.keep else "/var/run/pyvswitch-demo"
    os.makedirs(rundir, exist_ok=True)
    env = dict(os.environ, PVS_RUNDIR=rundir)
    ok = False
    try:
        build(lab, env)
        ok_same, ok_cross = traffic(lab)
        report(env)
        ok = ok_same and not ok_cross
        step("Result")
        print(f"VLAN 10 a -> b: {'replies' if ok_same else 'NO REPLY (unexpected)'}")
        print(f"VLAN 10 -> VLAN 20 a -> c: {'no reply, isolated' if not ok_cross else 'REPLIED (isolation broken)'}")
    finally:
        if a.keep:
            print(f"\nLeft running. Try: PVS_RUNDIR={rundir} pvs-vsctl show; "
                  f"ip netns exec pvsdemo-a ping 10.0.0.2")
            print(f"Stop with: kill $(cat {rundir}/pvs-vswitchd.pid); "
                  + "; ".join(f"ip netns del pvsdemo-{h[0]}; ip link del {h[1]}" for h in HOSTS))
        else:
            lab.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
