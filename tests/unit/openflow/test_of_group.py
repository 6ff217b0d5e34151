"""ovs-ofctl group and meter syntax."""

import pytest

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import messages as M
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text_group import (format_group, format_meter, parse_group,
                                           parse_meter)


def test_group_parse_and_format():
    gm = parse_group("group_id=5,type=select,bucket=weight:10,watch_port:2,output:2,"
                     "bucket=actions=mod_dl_src:00:00:00:00:00:01,output:3")
    assert gm.group_id == 5 and gm.group_type == "select"
    assert gm.buckets[0] == M.Bucket((A.Output(2),), 10, 2)
    assert gm.buckets[1].actions[1] == A.Output(3)
    text = format_group(M.GroupDesc(gm.group_type, gm.group_id, gm.buckets))
    assert text == ("group_id=5,type=select,bucket=weight:10,watch_port:2,actions=output:2,"
                    "bucket=actions=mod_dl_src:00:00:00:00:00:01,output:3")
    again = parse_group(text)
    assert again.buckets == gm.buckets
    assert parse_group("group_id=1,type=fast_failover,bucket=watch_group:3,output:1"
                       ).group_type == "ff"
    assert parse_group("", "delete").group_id == M.OFPG_ALL
    assert parse_group("group_id=7", "delete").group_id == 7


@pytest.mark.parametrize("text,cmd,msg", [
    ("type=all,bucket=output:1", "add", "must specify a group_id"),
    ("group_id=1,type=weird", "add", "unknown group type"),
    ("group_id=1,frob=2", "add", "unknown keyword frob"),
    ("group_id=1,bucket=output:1", "delete", "not allowed when deleting"),
    ("group_id=1,bucket=frobnicate", "add", "unknown action frobnicate"),
    ("group_id=1,selection_method=hash", "add", "not supported"),
])
def test_group_errors(text, cmd, msg):
    with pytest.raises(FlowParseError, match=msg):
        parse_group(text, cmd)


def test_meter_parse_and_format():
    mm = parse_meter("meter=3,pktps,burst,stats,band=type=drop,rate=100,burst_size=10")
    assert mm.meter_id == 3 and mm.flags == M.METER_PKTPS | M.METER_BURST | M.METER_STATS
    assert mm.bands == (M.MeterBand("drop", 100, 10),)
    assert format_meter(M.MeterConfig(mm.flags, 3, mm.bands)) == \
        "meter=3 pktps burst stats bands=\ntype=drop rate=100 burst_size=10"
    assert parse_meter("meter=4,band=type=drop,rate=5").flags == M.METER_KBPS
    assert parse_meter("", "delete").meter_id == M.OFPM_ALL


@pytest.mark.parametrize("text,msg", [
    ("kbps,band=type=drop,rate=1", "must specify a meter id"),
    ("meter=1,kbps", "needs at least one band"),
    ("meter=1,band=type=mark,rate=1", "unknown band type"),
    ("meter=1,band=type=drop", "rate missing"),
    ("meter=1,fast,band=type=drop,rate=1", "unknown keyword fast"),
])
def test_meter_errors(text, msg):
    with pytest.raises(FlowParseError, match=msg):
        parse_meter(text)
