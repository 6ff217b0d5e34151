"""xlate of the group action: all, select, indirect and fast-failover groups.

- all: every bucket, each on a copy of the flow (a bucket's changes do not
  reach the next bucket or the actions after the group; the datapath packet
  is put back by the next commit).
- indirect: its one bucket, the same way.
- select: one live bucket chosen by a hash over the packet's Ethernet, IP
  and L4 addresses (those fields are un-wildcarded: one megaflow per
  hash input), weighted by bucket weight.
- ff (fast failover): the first bucket whose watch_port is live (ofproto's
  port liveness; the version moves when it changes) or whose watch_group
  has a live bucket.

A group that is missing drops (trace says so); a group reached again
inside its own buckets is a loop and ends the translation with an error.
The counters the packet goes to (group, bucket) are appended to
ctx.rules_hit so the revalidator credits them like rules.
"""

import zlib

from pyvswitch.openflow import fields as F
from pyvswitch.ofproto import xlate as X

_HASH_FIELDS = {
    F.ETH_IP: ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "nw_proto"),
    F.ETH_IPV6: ("dl_src", "dl_dst", "dl_type", "ipv6_src_hi", "ipv6_src_lo",
                 "ipv6_dst_hi", "ipv6_dst_lo", "nw_proto"),
}
_L4 = (6, 17, 132)


def group(ctx, act):
    g = ctx.ofp.groups.get(act.group_id)
    if g is None:
        ctx.note(f"-> group {act.group_id} does not exist: drop", 1)
        return
    if act.group_id in ctx.groups_seen:
        ctx.error = f"group {act.group_id} loops back to itself"
        ctx.note(ctx.error + ", dropping", 1)
        return
    ctx.rules_hit.append(g)
    buckets = _choose(ctx, g)
    if not buckets:
        ctx.note(f"-> no live bucket in group {g.group_id}: drop", 1)
        return
    saved_seen = ctx.groups_seen
    ctx.groups_seen = saved_seen + (g.group_id,)
    for i in buckets:
        ctx.rules_hit.append(g.bucket_stats[i])
        _bucket(ctx, g, i)
        if ctx.error:
            break
    ctx.groups_seen = saved_seen


def _bucket(ctx, g, i):
    ctx.note(f"bucket {i}", 1)
    saved_flow, saved_rule = list(ctx.flow), ctx.rule
    ctx.depth += 1
    X.run_actions(ctx, g.buckets[i].actions)
    ctx.depth -= 1
    ctx.flow[:] = saved_flow
    ctx.rule = saved_rule


def live(ctx, bucket, seen=()):
    """Fast-failover liveness: watch_port up and/or watch_group alive."""
    ofp = ctx.ofp
    ok = True
    if bucket.watch_port not in (F.OFPP_NONE, 0xFFFFFFFF):
        ok = ofp.port_live(bucket.watch_port)
    wg = bucket.watch_group
    if ok and wg != 0xFFFFFFFF:
        g = ofp.groups.get(wg)
        ok = g is not None and wg not in seen and any(
            live(ctx, b, seen + (wg,)) for b in g.buckets)
    return ok


def _choose(ctx, g):
    n = len(g.buckets)
    if g.group_type == "all":
        return list(range(n))
    if g.group_type == "indirect":
        return [0] if n else []
    alive = [i for i in range(n) if live(ctx, g.buckets[i])]
    if g.group_type == "ff":
        return alive[:1]
    alive = [i for i in alive if g.buckets[i].weight]
    if not alive:
        return []
    total = sum(g.buckets[i].weight for i in alive)
    point = _hash(ctx) % total
    for i in alive:
        point -= g.buckets[i].weight
        if point < 0:
            return [i]
    return alive[-1:]


def _hash(ctx):
    ctx.examine("dl_type")
    names = _HASH_FIELDS.get(X.get(ctx.flow, "dl_type"), ("dl_src", "dl_dst", "dl_type"))
    values = []
    for name in names:
        ctx.examine(name)
        values.append(X.get(ctx.flow, name))
    if X.get(ctx.flow, "dl_type") in _HASH_FIELDS and X.get(ctx.flow, "nw_proto") in _L4:
        for name in ("tp_src", "tp_dst"):
            ctx.examine(name)
            values.append(X.get(ctx.flow, name))
    return zlib.crc32(",".join(map(str, values)).encode())
