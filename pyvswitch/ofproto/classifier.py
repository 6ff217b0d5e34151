"""Tuple space search classifier that records which bits it examined.

What: one OpenFlow table's rules, grouped into subtables by match mask (a
"tuple"). A subtable is a dict from masked key to its rules (best first), so
probing it is one hash lookup. Subtables are probed in order of their highest
priority; once the best match so far outranks a subtable's max priority, that
subtable and every later one are skipped (priority pruning).

Examined bits (for megaflows): `lookup(flow, wc)` ORs into `wc` the mask of
every subtable it probed, matched or not (a probe that missed still depends
on those bits). Subtables pruned by priority add nothing: any packet that
agrees with this one on `wc` finds the same best rule, which still outranks
them. So the result is exactly as wide as this algorithm can safely make it.

Rules are duck-typed: `.key` and `.mask` (tuples of ints, key already
masked), `.priority`, `.seq` (insertion order). Ties in priority go to the
lowest seq (the older rule), so lookups are deterministic.

Removal costs the rule's bucket (rules sharing its masked match), not the
table: each subtable counts its rules per priority, so its max_priority is
recomputed (over the distinct priorities) only when the last rule of the top
priority goes, and the subtable order is re-sorted lazily, at the next
lookup, and only if some subtable's max_priority changed or a subtable came
or went.

Invariants: every rule is in exactly one subtable; a subtable with no rules
is removed. Single-threaded (the ofproto's owner thread).
"""


class Counters:
    """Packet and byte counters credited like a rule's (Ofproto.credit): a
    table's lookups that matched or missed, a mirror's copies."""
    __slots__ = ("n_packets", "n_bytes", "used")

    def __init__(self):
        self.n_packets = self.n_bytes = 0
        self.used = 0.0


class Subtable:
    __slots__ = ("mask", "words", "buckets", "max_priority", "n_rules", "prios")

    def __init__(self, mask):
        self.mask = mask
        self.words = tuple((i, m) for i, m in enumerate(mask) if m)
        self.buckets = {}          # masked key (tuple over self.words) -> [rules]
        self.prios = {}            # priority -> number of rules with it
        self.max_priority = -1
        self.n_rules = 0

    def hash_key(self, flow):
        return tuple(flow[i] & m for i, m in self.words)

    def insert(self, rule):
        """Returns True if the subtable's max_priority changed."""
        rules = self.buckets.get(hk := self.hash_key(rule.key))
        if rules is None:
            self.buckets[hk] = [rule]
        else:
            rules.append(rule)
            rules.sort(key=_rank)
        self.n_rules += 1
        self.prios[rule.priority] = self.prios.get(rule.priority, 0) + 1
        if rule.priority > self.max_priority:
            self.max_priority = rule.priority
            return True
        return False

    def remove(self, rule):
        """Returns True if the subtable's max_priority changed. Cost: the
        rule's bucket (rules with the same masked match), plus the number of
        distinct priorities when the last rule of the top priority goes."""
        hk = self.hash_key(rule.key)
        rules = self.buckets[hk]
        for i, r in enumerate(rules):
            if r is rule:
                del rules[i]
                break
        else:
            raise KeyError("rule not in classifier")
        if not rules:
            del self.buckets[hk]
        self.n_rules -= 1
        left = self.prios[rule.priority] - 1
        if left:
            self.prios[rule.priority] = left
            return False
        del self.prios[rule.priority]
        if rule.priority == self.max_priority:
            self.max_priority = max(self.prios, default=-1)
            return True
        return False


def _rank(rule):
    return (-rule.priority, rule.seq)


def better(a, b):
    """True if rule a beats rule b (higher priority, then older)."""
    return b is None or _rank(a) < _rank(b)


class Classifier:
    def __init__(self, n_words):
        self.n_words = n_words
        self._subtables = {}       # mask -> Subtable
        self._order = []           # subtables by max_priority, highest first
        self._dirty = False        # _order needs re-sorting (done lazily)
        self._n = 0

    def __len__(self):
        return self._n

    def __iter__(self):
        for st in list(self._subtables.values()):
            for rules in list(st.buckets.values()):
                yield from list(rules)

    def n_subtables(self):
        return len(self._subtables)

    def insert(self, rule):
        st = self._subtables.get(rule.mask)
        if st is None:
            st = self._subtables[rule.mask] = Subtable(rule.mask)
            self._dirty = True
        if st.insert(rule):
            self._dirty = True
        self._n += 1

    def remove(self, rule):
        st = self._subtables[rule.mask]
        if st.remove(rule):
            self._dirty = True
        if not st.n_rules:
            del self._subtables[rule.mask]
            self._dirty = True
        self._n -= 1

    def find_exact(self, key, mask, priority):
        """The rule with exactly this match and priority (strict), or None."""
        st = self._subtables.get(mask)
        if st is None:
            return None
        for rule in st.buckets.get(st.hash_key(key), ()):
            if rule.priority == priority:
                return rule
        return None

    def _ordered(self):
        if self._dirty:
            self._order = sorted(self._subtables.values(),
                                 key=lambda s: -s.max_priority)
            self._dirty = False
        return self._order

    def lookup(self, flow, wc=None):
        """Best rule matching `flow` (a sequence of n_words ints), or None.
        If `wc` (a mutable list of n_words ints) is given, the mask bits of
        every probed subtable are ORed into it."""
        best = None
        for st in self._ordered():
            if best is not None and st.max_priority < best.priority:
                break
            if wc is not None:
                for i, m in st.words:
                    wc[i] |= m
            rules = st.buckets.get(st.hash_key(flow))
            if rules and better(rules[0], best):
                best = rules[0]
        return best
