"""Capture what ovs-ofctl sends: a tiny OpenFlow listener (a tool, not a test).

Run: .venv/bin/python tests/unit/openflow/golden/capture.py
It starts a TCP listener, runs each ovs-ofctl command against it, answers
hello/echo/features/get-config/barrier minimally and every stats/multipart
request with an empty reply, and writes each message ovs-ofctl sent to
ofctl/<version>_<command>.bin (the messages ovs-ofctl sent, concatenated in
the order received; several connections are merged in arrival order).
"""

import os
import socket
import struct
import subprocess
import sys
import threading

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ofctl")

COMMANDS = {
    "show": ["show"],
    "show-names": ["--names", "dump-flows"],
    "dump-flows": ["dump-flows"],
    "dump-flows-match": ["dump-flows", "table=1,tcp,nw_dst=10.0.0.0/8,tp_dst=80"],
    "dump-flows-cookie": ["dump-flows", "cookie=0x5/-1,reg0=7"],
    "add-flow": ["add-flow", "in_port=1,dl_vlan=10,priority=100,actions=output:2"],
    "add-flow-table": ["add-flow", "table=3,ip,nw_src=10.0.0.1,idle_timeout=30,"
                       "actions=mod_vlan_vid:20,NORMAL"],
    "add-flow-rich": ["add-flow", "tcp,dl_vlan=5,tp_dst=22,dl_src=00:11:22:33:44:55/ff:ff:ff:00:00:00,"
                      "actions=strip_vlan,controller:128,resubmit(,2)"],
    "add-flow-goto": ["add-flow", "table=1,priority=7,actions=mod_vlan_pcp:3,output:1,goto_table:4"],
    "add-flow-ipv6": ["add-flow", "icmp6,dl_vlan=9,ipv6_src=2001:db8::/32,icmpv6_type=135,"
                      "actions=pop_vlan,LOCAL"],
    "add-flow-arp": ["add-flow", "arp,arp_tpa=10.0.0.1,arp_op=1,dl_vlan_pcp=2,"
                     "actions=push_vlan:0x8100,set_vlan_vid:5,IN_PORT"],
    "add-flow-nx": ["add-flow", "reg1=5,tun_id=0x10,actions=output:1"],
    "del-flows": ["del-flows"],
    "del-flows-match": ["del-flows", "--strict", "priority=5,udp,tp_src=53"],
    "dump-ports": ["dump-ports"],
    "add-group": ["add-group", "group_id=1,type=select,bucket=weight:10,output:1,"
                  "bucket=weight:20,output:2"],
    "add-group-ff": ["add-group", "group_id=2,type=fast_failover,"
                     "bucket=watch_port:1,output:1,bucket=watch_port:2,output:2"],
    "dump-groups": ["dump-groups"],
    "add-meter": ["add-meter", "meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100"],
    "add-meter-dscp": ["add-meter", "meter=2,pktps,band=type=dscp_remark,rate=50,prec_level=1"],
    "dump-meters": ["dump-meters"],
}
VERSIONS = {"of10": ("OpenFlow10", 1), "of13": ("OpenFlow13", 4)}


def features_reply(version, xid):
    if version == 1:
        port = struct.pack("!H6s16sIIIIII", 1, b"\x00\x11\x22\x33\x44\x01",
                           b"p1".ljust(16, b"\0"), 0, 0, 0xC0, 0, 0, 0)
        body = struct.pack("!QIB3xII", 1, 0, 254, 0xC7, 0xFFF) + port
    else:
        body = struct.pack("!QIBB2xII", 1, 0, 254, 0, 0x4F, 0)
    return struct.pack("!BBHI", version, 6, 8 + len(body), xid) + body


def reply_for(msg):
    version, mtype, length, xid = struct.unpack_from("!BBHI", msg)
    def hdr(t, body):
        return struct.pack("!BBHI", version, t, 8 + len(body), xid) + body
    if mtype == 2:                      # echo request
        return hdr(3, msg[8:])
    if mtype == 5:                      # features request
        return features_reply(version, xid)
    if mtype == 7:                      # get config request
        return hdr(8, struct.pack("!HH", 0, 128))
    if version == 1 and mtype == 18:    # barrier (1.0)
        return hdr(19, b"")
    if version != 1 and mtype == 20:    # barrier (1.3)
        return hdr(21, b"")
    if version != 1 and mtype == 18 and msg[8:10] == b"\x00\x0c":
        # table features: one table, the 8 required properties, all empty
        props = b"".join(struct.pack("!HH4x", t, 4) for t in range(0, 16, 2))
        tf = struct.pack("!HB5x32sQQII", 64 + len(props), 0, b"t0".ljust(32, b"\0"),
                         2**64 - 1, 2**64 - 1, 0, 1000000) + props
        return hdr(19, struct.pack("!HH4x", 12, 0) + tf)
    if mtype in (16, 18):               # stats / multipart request -> empty reply
        head = 12 if version == 1 else 16
        stype = struct.unpack_from("!H", msg, 8)[0]
        if stype == 0xFFFF:
            head += 12 if version == 1 else 8
        body = bytearray(msg[8:head])
        struct.pack_into("!H", body, 2, 0)
        return hdr(mtype + 1, bytes(body))
    return None


def serve(sock, version, got):
    """Accept connections (ovs-ofctl may open several) until the socket closes."""
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_one, args=(conn, version, got),
                         daemon=True).start()


def serve_one(conn, version, got):
    conn.sendall(struct.pack("!BBHI", version, 0, 8, 0))
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        while len(buf) >= 8:
            length = struct.unpack_from("!H", buf, 2)[0]
            if len(buf) < length:
                break
            msg, buf = buf[:length], buf[length:]
            got.append(msg)
            reply = reply_for(msg) if msg[1] != 0 else None
            if reply:
                conn.sendall(reply)
    conn.close()


def capture(vname, args):
    proto, version = VERSIONS[vname]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    got = []
    t = threading.Thread(target=serve, args=(sock, version, got), daemon=True)
    t.start()
    cmd = ["ovs-ofctl", *os.environ.get("OFCTL_OPTS", "").split(), "-O", proto, args[0], f"tcp:127.0.0.1:{port}", *args[1:]]
    if args[0].startswith("--"):
        cmd = ["ovs-ofctl", *os.environ.get("OFCTL_OPTS", "").split(), "-O", proto, args[0], args[1], f"tcp:127.0.0.1:{port}", *args[2:]]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        r = subprocess.CompletedProcess(cmd, -1, "", "timeout")
    sock.close()
    return r, got


def main():
    os.makedirs(HERE, exist_ok=True)
    for vname in [a for a in sys.argv[1:] if a in VERSIONS] or VERSIONS:
        for name, args in COMMANDS.items():
            if len(sys.argv) > 2 and name not in sys.argv[2:]:
                continue
            r, got = capture(vname, args)
            status = "ok" if r.returncode == 0 else f"rc={r.returncode} {r.stderr.strip()[:100]}"
            print(f"{vname} {name}: {len(got)} messages, {status}")
            for msg in got:
                print("   ", msg[:24].hex())
            if r.returncode != 0:
                continue
            with open(os.path.join(HERE, f"{vname}_{name}.bin"), "wb") as f:
                f.write(b"".join(got))


if __name__ == "__main__":
    sys.exit(main())
