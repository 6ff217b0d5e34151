"""pvs-secgroup's pure parts: conntrack dump lines, strict-delete matches, rule options, model checks."""

import pytest

from pyvswitch.cloud import sgctl as C


def test_parse_ct_line():
    name, proto, f = C.parse_ct_line("tcp,orig=(src=10.7.0.3,dst=10.7.0.2,sport=5,dport=8080),reply=(src=10.7.0.2,"
                                     "dst=10.7.0.3,sport=8080,dport=5),zone=1,protoinfo=(state=ESTABLISHED)")
    assert (name, proto, f["src"], f["dport"]) == ("tcp", 6, "10.7.0.3", "8080")
    name, proto, f = C.parse_ct_line("icmp,orig=(src=1.1.1.1,dst=2.2.2.2,id=7,type=8,code=0),reply=(...)")
    assert proto == 1 and f["id"] == "7" and f["type"] == "8"
    assert C.parse_ct_line("garbage") is None


def test_match_only_for_strict_delete():
    k = C.normalize("cookie=0x5ec0,table=82,priority=70,ct_state=+new-est+trk,reg5=1,ip,"
                    "actions=conjunction(3,1/3)")
    m = C._match_only(k)
    assert "cookie" not in m and "conjunction" not in m and "table=82" in m and "priority=70" in m
    assert C.normalize(f"{m},actions=drop").startswith(m.split(",")[0])


def test_rule_options():
    assert C._rule("ingress", ["protocol=tcp", "port=80-90", "remote=group:web"]) == {
        "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_min": 80, "port_max": 90,
        "remote_group": "web"}
    assert C._rule("egress", ["ethertype=IPv6", "remote=2001:db8::/32"])["remote_cidr"] == "2001:db8::/32"
    with pytest.raises(C.CliError):
        C._rule("ingress", ["port=eighty"])
    with pytest.raises(C.CliError):
        C._rule("ingress", ["colour=red"])


def test_check_model_refuses_bad_documents():
    ok = {"bridge": "b", "groups": {"g": [{"direction": "ingress", "protocol": "tcp", "port_min": 22,
                                           "port_max": 22}]},
          "ports": {"p": {"mac": "fa:16:3e:00:00:01", "ips": ["10.0.0.1"], "groups": ["g"]}}}
    assert C.check_model(ok) is ok
    for bad in ([], {"groups": []}, dict(ok, groups={"g": [{"direction": "up"}]}),
                dict(ok, ports={"p": {"mac": "x", "ips": ["10.0.0.1"], "groups": ["missing"]}}),
                dict(ok, groups={"g": [{"direction": "ingress", "colour": "red"}]})):
        with pytest.raises(C.CliError):
            C.check_model(bad)


def test_ofports_from_one_interface_listing():
    from pyvswitch.cloud.sgctl import parse_ofports
    text = ('name                : br0\nofport              : 65534\n\n'
            'name                : "tap:1"\nofport              : 7\n\n'
            'name                : p2\nofport              : []\n')
    assert parse_ofports(text) == {"br0": 65534, "tap:1": 7, "p2": -1}
