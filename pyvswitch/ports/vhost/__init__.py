"""vhost-user: the switch as the virtio-net device of QEMU guests and DPDK
virtio-user applications (see docs/port-vhost-user.md).

    layout.py    the port's flat memory: control words, dirty log, guest regions
    protocol.py  wire format (messages, fds)
    memory.py    reserved range, MAP_FIXED regions, address translation, log
    device.py    one session's message handling and ring state
    virtq.py     compiled split-virtqueue kernels (rx_burst, tx_one, tx_flush)
    notify.py    kicks around an idle PMD's sleep (rx_arm, rx_disarm)
    rarp.py      SEND_RARP: the announcement frame injected on queue 0
    port.py      port types dpdkvhostuser / dpdkvhostuserclient
    frontend.py  a virtio-user front-end (driver side) for tests and tools
"""
