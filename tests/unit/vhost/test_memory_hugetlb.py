"""Guest memory backed by huge pages (QEMU -mem-path / memory-backend-file on
hugetlbfs, testpmd without --no-huge): a hugetlbfs file maps only at
addresses aligned to its page size, so the reserved window must be aligned."""

import mmap
import os

import pytest

from pyvswitch.ports.vhost.memory import BASE_ALIGN, GuestMemory

HUGE = 2 << 20


def test_window_base_is_aligned_for_1g_pages():
    gms = [GuestMemory(1 << 30) for _ in range(3)]
    try:
        assert all(g.base % BASE_ALIGN == 0 for g in gms)
        assert len({g.base for g in gms}) == 3
    finally:
        for g in gms:
            g.close()


def _huge_memfd(size):
    try:
        fd = os.memfd_create("pvs-test-huge", os.MFD_HUGETLB)
    except (OSError, AttributeError) as e:
        pytest.skip(f"no MFD_HUGETLB: {e}")
    try:
        os.ftruncate(fd, size)
        probe = mmap.mmap(fd, size)        # fails when no huge page is free
        probe.close()
    except OSError as e:
        os.close(fd)
        pytest.skip(f"no free 2 MB huge pages ({e}); reserve with vm.nr_hugepages")
    return fd


def test_hugetlb_region_maps_and_is_shared():
    fd = _huge_memfd(2 * HUGE)
    gm = GuestMemory(1 << 30)
    try:
        gm.set_table([(0x100000000, 2 * HUGE, 0x7F0000000000, 0)], [fd])
        off = gm.gpa_off(0x100000000 + HUGE + 5, 1)
        assert off > 0 and gm.uva_off(0x7F0000000000 + HUGE + 5, 1) == off
        gm.mem[off] = 0xA5                                  # the guest sees our write
        view = mmap.mmap(fd, 2 * HUGE)
        assert view[HUGE + 5] == 0xA5
        view.close()
        gm.set_table([(0, 2 * HUGE, 0x7F0000000000, 0)], [fd])   # run-time remap
        assert gm.mem[gm.gpa_off(HUGE + 5, 1)] == 0xA5
    finally:
        gm.close()
        os.close(fd)
