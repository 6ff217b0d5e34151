"""Two QEMU guests on pyvswitch vhost-user ports ping each other.

Guest A sits on a `dpdkvhostuser` port (the switch listens at <rundir>/vhqa;
QEMU connects), guest B on a `dpdkvhostuserclient` port (QEMU listens with
server=on,wait=off; the switch connects to options:vhost-server-path), a bridge
(named per pytest process) with its default NORMAL flow. The guests are a Debian kernel and a
busybox initramfs built by pyvswitch/tools/guest.py (cached under
.cache/guest); A pings B, prints the result on its serial console and powers
off; B stays up until it is killed.

KVM when /dev/kvm is backed by VMX/SVM, else TCG (guest.accel() says why; on
a kvm_pvm host the stock kernel is unusably slow under KVM). Under TCG the
NIC has no MSI-X (vectors=0): QEMU 7.2 (Debian 12) segfaults in
msix_set_vector_notifiers when a TCG guest starts a vhost-user
virtio-net-pci with MSI-X, against DPDK's vhost PMD as well as ours.

The test skips only when qemu-system-x86_64 is missing or unusable, or when
the guest cannot be built (apt-get download failed), with that reason.
QEMU processes are killed by PID in a finally block, the daemon by the Lab.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from pyvswitch.tools import guest as G
from pyvswitch.tools.lab import Lab, tool

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

COUNT = 5
BOOT_BUDGET = 150          # seconds for A to boot, find B and finish pinging


@pytest.fixture(scope="module")
def image():
    problem = G.qemu_problem()
    if problem:
        pytest.skip(problem)
    try:
        return G.build(log=print)
    except G.GuestError as e:
        pytest.skip(f"cannot build the guest image: {e}")


class Qemu:
    def __init__(self, lab, image, name, sock, server, ip, mac, accel, **init):
        self.name = name
        d = lab.tempdir(f"q{name}")
        self.serial = os.path.join(d, "serial.log")
        self.stderr = os.path.join(d, "qemu.err")
        self.argv = G.qemu_argv(image, sock, G.cmdline(ip=ip, **init), self.serial, mac,
                                server=server, accel_name=accel, name=f"pvs-{name}")
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def text(self, path=None):
        try:
            with open(path or self.serial, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def report(self):
        return (f"--- {self.name}: {' '.join(self.argv)}\n(exit {self.proc.poll()})\n"
                f"qemu stderr: {self.text(self.stderr)[-1500:]}\nserial: {self.text()[-3000:]}")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def _wait(fn, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def test_two_qemu_guests_ping_through_vhost_user(image):
    accel, why = G.accel()
    print(f"accelerator: {accel} ({why})")
    t_start = time.monotonic()
    with Lab(prefix="vhq") as lab:
        rundir = lab.tempdir("run")
        env = dict(os.environ, PVS_RUNDIR=rundir)

        def cli(prog, *args):
            r = subprocess.run([tool(prog), *args], env=env, capture_output=True, text=True, timeout=180)
            assert r.returncode == 0, f"{prog} {' '.join(args)}: {r.stderr}\n{daemon_log()}"
            return r.stdout

        def daemon_log():
            try:
                with open(os.path.join(rundir, "pvs-vswitchd.log"), errors="replace") as f:
                    return "pvs-vswitchd.log: " + f.read()[-3000:]
            except FileNotFoundError:
                return "(no pvs-vswitchd.log)"

        lab.start_daemon(rundir, env=env)
        print(f"switch started after {time.monotonic() - t_start:.1f} s")
        b_sock = os.path.join(lab.tempdir("sock"), "b.sock")
        br = f"vhq{os.getpid() % 4096:03x}br"      # its internal port is a kernel device: unique name
        cli("pvs-vsctl", "add-br", br,
            "--", "add-port", br, "vhqa", "--", "set", "Interface", "vhqa", "type=dpdkvhostuser",
            "--", "add-port", br, "vhqb", "--", "set", "Interface", "vhqb", "type=dpdkvhostuserclient",
            f"options:vhost-server-path={b_sock}")
        print(f"switch configured after {time.monotonic() - t_start:.1f} s")
        assert "actions=NORMAL" in cli("pvs-ofctl", "dump-flows", br)
        a_sock = os.path.join(rundir, "vhqa")
        assert _wait(lambda: os.path.exists(a_sock), 20), f"no socket {a_sock}"

        guests = []
        t0 = time.monotonic()
        try:
            b = Qemu(lab, image, "b", b_sock, True, "10.77.0.2/24", "52:54:00:77:00:02", accel,
                     stay=BOOT_BUDGET + 60)
            guests.append(b)
            a = Qemu(lab, image, "a", a_sock, False, "10.77.0.1/24", "52:54:00:77:00:01", accel,
                     ping="10.77.0.2", count=COUNT, timeout=BOOT_BUDGET - 30)
            guests.append(a)

            def a_done():
                return a.proc.poll() is not None or "PVS-POWEROFF" in a.text()
            done = _wait(a_done, BOOT_BUDGET, 0.5)
            elapsed = time.monotonic() - t0
            ra, rb = G.parse_serial(a.text()), G.parse_serial(b.text())
            report = "\n".join([g.report() for g in guests] + [daemon_log()])
            print(f"guests done after {elapsed:.1f} s ({accel})")
            assert done, f"guest A did not finish within {BOOT_BUDGET} s\n{report}"
            assert ra["ready"] and rb["ready"], f"a guest never configured eth0\n{report}"
            assert ra["ping"] is not None, f"no ping result from guest A\n{report}"
            assert ra["ping"]["transmitted"] == COUNT and ra["ping"]["received"] == COUNT, \
                f"pings lost: {ra['ping']}\n{report}"
            assert not ra["errors"] and not rb["errors"], report

            # B is still up: its port is linked; the switch counted the pings
            assert b.proc.poll() is None, report
            assert _wait(lambda: cli("pvs-vsctl", "get", "Interface", "vhqb", "link_state")
                         .strip().strip('"') == "up", 10), cli("pvs-vsctl", "list", "Interface", "vhqb")
            ofport = {n: int(cli("pvs-vsctl", "get", "Interface", n, "ofport")) for n in ("vhqa", "vhqb")}
            text = cli("pvs-ofctl", "dump-ports", br)
            print(text)
            stats = {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
                     for m in re.finditer(r"port\s+(\d+): rx pkts=(\d+).*?\n\s+tx pkts=(\d+)", text)}
            for n in ("vhqa", "vhqb"):
                rx, tx = stats.get(ofport[n], (0, 0))
                # COUNT echo requests A -> B and COUNT replies B -> A, plus ARP
                assert rx >= COUNT and tx >= COUNT, f"{n} (port {ofport[n]}): rx={rx} tx={tx}\n{text}"
        finally:
            for g in guests:
                g.kill()
