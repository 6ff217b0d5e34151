"""An os-ken L2-learning controller for the OpenFlow tests (not a test module).

    python tests/e2e/osken_l2.py PORT

Listens on 127.0.0.1:PORT (OpenFlow 1.3). On a switch's features reply it
installs the table-miss flow (priority 0 -> CONTROLLER) and sends one
packet-out (ethertype 0x88b5, payload "osken-hello") to port 2; on each
packet-in it learns the source MAC, installs a priority-1 flow
(in_port, eth_src, eth_dst -> output) once the destination is known, and
sends the packet out (flooding when unknown), as os-ken's simple_switch_13.
Every event is printed as one line on stdout (flushed), for the test to read:
    CONNECTED <dpid hex>
    PACKET_IN <in_port> <src> <dst> <total_len> <reason>
    FLOW <in_port> <src> <dst> <out_port>
"""

import sys

from os_ken.lib import hub

hub.patch(thread=False)

from os_ken import cfg  # noqa: E402
from os_ken.base import app_manager  # noqa: E402
from os_ken.controller import ofp_event  # noqa: E402
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls  # noqa: E402
from os_ken.lib.packet import ethernet, packet  # noqa: E402
from os_ken.ofproto import ofproto_v1_3  # noqa: E402

HELLO_FRAME = (bytes.fromhex("020000000002" "0200000000fe" "88b5") + b"osken-hello").ljust(60, b"\0")


def say(*words):
    print(*words, flush=True)


class L2(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.macs = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.flow(dp, 0, parser.OFPMatch(),
                  [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])
        dp.send_msg(parser.OFPPacketOut(dp, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER,
                                        [parser.OFPActionOutput(2)], HELLO_FRAME))
        dp.send_msg(parser.OFPBarrierRequest(dp))
        say("CONNECTED", f"{dp.id:x}")

    @staticmethod
    def flow(dp, priority, match, actions):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=priority, match=match,
                                      instructions=inst))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocols(ethernet.ethernet)[0]
        say("PACKET_IN", in_port, eth.src, eth.dst, msg.total_len, msg.reason)
        table = self.macs.setdefault(dp.id, {})
        table[eth.src] = in_port
        out = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out)]
        if out != ofp.OFPP_FLOOD:
            self.flow(dp, 1, parser.OFPMatch(in_port=in_port, eth_dst=eth.dst,
                                             eth_src=eth.src), actions)
            say("FLOW", in_port, eth.src, eth.dst, out)
        dp.send_msg(parser.OFPPacketOut(dp, ofp.OFP_NO_BUFFER, in_port, actions, msg.data))


def main():
    port = sys.argv[1]
    cfg.CONF(args=["--ofp-tcp-listen-port", port, "--ofp-listen-host", "127.0.0.1"],
             project="os_ken")
    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps([__name__ if __name__ != "__main__" else "osken_l2"])
    services = mgr.instantiate_apps(**mgr.create_contexts())
    say("LISTENING", port)
    hub.joinall(services)


if __name__ == "__main__":
    main()
