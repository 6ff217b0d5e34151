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

Invariants: every rule is in exactly one subtable; a subtable with no rules
is removed. Single-threaded (the ofproto's owner thread).
"""


class Subtable:
    __slots__ = ("mask", "words", "buckets", "max_priority", "n_rules")

    def __init__(self, mask):
        self.mask = mask
        self.words = tuple((i, m) for i, m in enumerate(mask) if m)
        self.buckets = {}          # masked key (tuple over self.words) -> [rules]
        self.max_priority = -1
        self.n_rules = 0

    def hash_key(self, flow):
        return tuple(flow[i] & m for i, m in self.words)

    def insert(self, rule):
        rules = self.buckets.setdefault(self.hash_key(rule.key), [])
        rules.append(rule)
        rules.sort(key=_rank)
        self.n_rules += 1
        self.max_priority = max(self.max_priority, rule.priority)

    def remove(self, rule):
        hk = self.hash_key(rule.key)
        rules = self.buckets[hk]
        rules.remove(rule)
        if not rules:
            del self.buckets[hk]
        self.n_rules -= 1
        if rule.priority == self.max_priority:
            self.max_priority = max(
                (r[0].priority for r in self.buckets.values()), default=-1)


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
        self._dirty = False

    def __len__(self):
        return sum(st.n_rules for st in self._subtables.values())

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
        st.insert(rule)
        self._dirty = True

    def remove(self, rule):
        st = self._subtables[rule.mask]
        st.remove(rule)
        if not st.n_rules:
            del self._subtables[rule.mask]
        self._dirty = True

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
