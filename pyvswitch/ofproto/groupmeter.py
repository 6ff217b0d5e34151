"""Ofproto's group and meter API (the wire requests and pvs-ofctl use it).

`group_mod(GroupMod, now)` / `meter_mod(MeterMod, now)` apply a mod or raise
OfprotoError changing nothing; deleting a group deletes the flows that use
it (reason group_delete, as OpenFlow says), deleting a meter the flows
metered by it. The dumps return messages objects: `group_descs(req)`,
`group_stats(req)`, `meter_configs(req)`, `meter_stats(req)` (req has a
group_id / meter_id, OFPG_ALL / OFPM_ALL for all) and the features replies.
Every change bumps the version (translations that used a group change).
"""

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import messages as M


class GroupMeterMixin:
    def group_mod(self, gm, now=0.0):
        deleted = self.groups.mod(gm, now)
        removed = []
        for gid in deleted:
            for rule in list(self.rules()):
                if A.uses_group(rule.all_actions(), gid):
                    self._remove(rule, "group_delete")
                    removed.append(rule)
        self.bump()
        return removed

    def meter_mod(self, mm, now=0.0):
        deleted = self.meters.mod(mm, now)
        removed = []
        for mid in deleted:
            for rule in list(self.rules()):
                if rule.meter == mid or any(isinstance(a, A.Meter) and a.meter_id == mid
                                            for a in rule.actions):
                    self._remove(rule, "delete")
                    removed.append(rule)
        self.bump()
        return removed

    def _group_ids(self, gid):
        if gid in (M.OFPG_ALL, M.OFPG_ANY):
            return sorted(self.groups)
        return [gid] if gid in self.groups else []

    def group_refs(self, gid):
        return sum(1 for r in self.rules() if A.uses_group(r.all_actions(), gid))

    def group_descs(self, req=None):
        gid = getattr(req, "group_id", M.OFPG_ALL)
        return [self.groups[g].desc() for g in self._group_ids(gid)]

    def group_stats(self, req=None, now=0.0):
        gid = getattr(req, "group_id", M.OFPG_ALL)
        return [self.groups.stats(g, now, self.group_refs(g)) for g in self._group_ids(gid)]

    def group_features(self, req=None):
        # types: all, select, indirect, ff; capabilities: select weight,
        # liveness, chaining; up to 65536 groups of each type.
        return M.GroupFeaturesReply(0xF, 0x1 | 0x2 | 0x4, (65536,) * 4)

    def _meter_ids(self, mid):
        if mid == M.OFPM_ALL:
            return sorted(self.meters)
        return [mid] if mid in self.meters else []

    def meter_flow_count(self, mid):
        return sum(1 for r in self.rules() if r.meter == mid)

    def meter_configs(self, req=None):
        mid = getattr(req, "meter_id", M.OFPM_ALL)
        return [M.MeterConfig(self.meters[m].flags, m, self.meters[m].bands)
                for m in self._meter_ids(mid)]

    def meter_stats(self, req=None, now=0.0):
        mid = getattr(req, "meter_id", M.OFPM_ALL)
        return [self.meters.stats(m, now, self.meter_flow_count(m))
                for m in self._meter_ids(mid)]

    def meter_features(self, req=None):
        # band types: drop (bit 1) and dscp_remark (bit 2); kbps, pktps,
        # burst and stats; one band per meter is what the datapath will run.
        return M.MeterFeaturesReply(self.meters.MAX, 0x6, 0xF, 1, 0)
