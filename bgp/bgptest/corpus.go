package bgptest

import (
	"encoding/binary"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Handling is what RFC 7606 (or, for what it leaves alone, RFC 4271)
// says a speaker must do with a case.
type Handling string

const (
	// TreatAsWithdraw: the session stays up; the UPDATE's NLRI (here the
	// default route through NextHopBad) is handled as withdrawn.
	TreatAsWithdraw Handling = "treat-as-withdraw"
	// AttributeDiscard: the session stays up; the route is accepted
	// without the malformed attribute (here: 0/0 via NextHopDiscard).
	AttributeDiscard Handling = "attribute-discard"
	// SessionReset: the speaker sends the NOTIFICATION Code/Subcode and
	// closes the session; nothing from the message is used.
	SessionReset Handling = "session-reset"
	// ParserError: not sent on a session (MRT, BMP); the library's parser
	// must return an error, not panic or loop.
	ParserError Handling = "parser-error"
	// Ignored: the session stays up and the message has no effect: the
	// route the peer announced before it (a default through the peer's
	// own address) stays. Only ever GoBGP's handling, where it cannot
	// locate the NLRI the RFC wants withdrawn.
	Ignored Handling = "ignored"
)

// Kind says how a case is delivered.
type Kind string

const (
	KindUpdate Kind = "update" // sent on an Established session
	KindOpen   Kind = "open"   // sent instead of the peer's OPEN
	KindMRT    Kind = "mrt"    // an MRT TABLE_DUMPv2 record (parser only)
	KindBMP    Kind = "bmp"    // a BMP Statistics Report body (parser only)
)

// Case is one malformed message.
type Case struct {
	Name     string
	Kind     Kind
	Rule     string // the rule it exercises, in words
	Ref      string // RFC section, CVE and the GoBGP issue/commit it reproduces
	Handling Handling
	// Code and Subcode of the expected NOTIFICATION (SessionReset).
	Code, Subcode uint8
	Msg           []byte
	// GoBGP, when set, is what GoBGP v4 does instead (seen with v4.8.0):
	// the tests assert it and report Deviation, so a change either way
	// is noticed.
	GoBGP                 Handling
	GoBGPCode, GoBGPSubco uint8
	Deviation             string
}

// Expect is the handling the tests assert: GoBGP's where it deviates.
func (c Case) Expect() (h Handling, code, subcode uint8) {
	if c.GoBGP != "" {
		return c.GoBGP, c.GoBGPCode, c.GoBGPSubco
	}
	return c.Handling, c.Code, c.Subcode
}

// Addresses the corpus messages carry. They are fixed so that the
// committed corpus is the same bytes everywhere; a test network puts
// NextHopBad and NextHopDiscard on the peer's link so that the kernel
// would accept a default through them if the speaker ever installed one.
var (
	NextHopBad     = netip.MustParseAddr("192.0.2.254") // in messages that must not be used
	NextHopDiscard = netip.MustParseAddr("192.0.2.253") // in attribute-discard cases: the route is valid
)

// PeerASN is the AS the hostile peer uses in AS_PATHs (its OPEN says the
// same through Config.ASN).
const PeerASN = 65100

// Attribute flags.
const (
	flagOptional   = 0x80
	flagTransitive = 0x40
	flagExtLen     = 0x10
)

func attr(flags, typ byte, val []byte) []byte {
	if flags&flagExtLen != 0 {
		b := []byte{flags, typ, 0, 0}
		binary.BigEndian.PutUint16(b[2:], uint16(len(val)))
		return append(b, val...)
	}
	return append([]byte{flags, typ, byte(len(val))}, val...)
}

// attrLen is attr with a length field that may lie.
func attrLen(flags, typ byte, length byte, val []byte) []byte {
	return append([]byte{flags, typ, length}, val...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Message frames a body with the BGP header (marker, length, type).
func Message(typ byte, body []byte) []byte {
	return messageLen(typ, body, bgp.BGP_HEADER_LENGTH+len(body))
}

// messageLen frames a body with a header length that may lie.
func messageLen(typ byte, body []byte, length int) []byte {
	h := make([]byte, bgp.BGP_HEADER_LENGTH)
	for i := range 16 {
		h[i] = 0xff
	}
	binary.BigEndian.PutUint16(h[16:], uint16(length))
	h[18] = typ
	return append(h, body...)
}

// update frames an UPDATE from its three sections, lengths computed.
func update(withdrawn, attrs, nlri []byte) []byte {
	b := make([]byte, 2, 4+len(withdrawn)+len(attrs)+len(nlri))
	binary.BigEndian.PutUint16(b, uint16(len(withdrawn)))
	b = append(b, withdrawn...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(attrs)))
	b = append(b, attrs...)
	b = append(b, nlri...)
	return Message(bgp.BGP_MSG_UPDATE, b)
}

func asn4(as ...uint32) []byte {
	var b []byte
	for _, a := range as {
		b = binary.BigEndian.AppendUint32(b, a)
	}
	return b
}

var (
	origin      = attr(flagTransitive, 1, []byte{0})
	asPath      = attr(flagTransitive, 2, cat([]byte{2, 1}, asn4(PeerASN))) // AS_SEQUENCE [65100]
	nlriDefault = []byte{0}                                                 // 0.0.0.0/0
)

func nextHop(a netip.Addr) []byte { return attr(flagTransitive, 3, a.AsSlice()) }

// Announce is a valid UPDATE announcing 0.0.0.0/0 through nh with
// AS_PATH [PeerASN], encoded by GoBGP's library.
func Announce(nh netip.Addr) []byte {
	n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("0.0.0.0/0")) // a valid prefix cannot fail
	h, _ := bgp.NewPathAttributeNextHop(nh)
	m := bgp.NewBGPUpdateMessage(nil, []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{PeerASN})}),
		h,
	}, []bgp.PathNLRI{{NLRI: n}})
	b, err := m.Serialize()
	if err != nil {
		panic(err) // a fixed valid message
	}
	return b
}

// Withdraw is a valid UPDATE withdrawing 0.0.0.0/0.
func Withdraw() []byte {
	n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("0.0.0.0/0"))
	b, err := bgp.NewBGPUpdateMessage([]bgp.PathNLRI{{NLRI: n}}, nil, nil).Serialize()
	if err != nil {
		panic(err)
	}
	return b
}

// RouteRefresh asks the speaker to re-send its routes for IPv4 unicast;
// the UPDATE it answers with is a barrier: everything sent before it was
// processed.
func RouteRefresh() []byte {
	b, err := bgp.NewBGPRouteRefreshMessage(bgp.AFI_IP, 0, bgp.SAFI_UNICAST).Serialize()
	if err != nil {
		panic(err)
	}
	return b
}

// announceWith is an UPDATE for 0/0 with the standard attributes, extra
// ones appended, through nh.
func announceWith(nh netip.Addr, extra ...[]byte) []byte {
	return update(nil, cat(origin, asPath, nextHop(nh), cat(extra...)), nlriDefault)
}

// Corpus returns every case, in a fixed order.
func Corpus() []Case {
	bad, disc := NextHopBad, NextHopDiscard
	rfc := []Case{
		{Name: "rfc7606-origin-undefined-value", Rule: "ORIGIN value 7 (only 0-2 are defined)", Ref: "RFC 7606 7.1",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(attr(flagTransitive, 1, []byte{7}), asPath, nextHop(bad)), nlriDefault)},
		{Name: "rfc7606-origin-bad-length", Rule: "ORIGIN of length 2", Ref: "RFC 7606 7.1",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(attr(flagTransitive, 1, []byte{0, 0}), asPath, nextHop(bad)), nlriDefault)},
		{Name: "rfc7606-aspath-undefined-segment-type", Rule: "AS_PATH segment of type 9", Ref: "RFC 7606 7.2",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(origin, attr(flagTransitive, 2, cat([]byte{9, 1}, asn4(PeerASN))), nextHop(bad)), nlriDefault)},
		{Name: "rfc7606-aspath-segment-overrun", Rule: "AS_PATH segment claims 4 ASes, carries 1", Ref: "RFC 7606 7.2",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(origin, attr(flagTransitive, 2, cat([]byte{2, 4}, asn4(PeerASN))), nextHop(bad)), nlriDefault)},
		{Name: "rfc7606-aspath-segment-zero-length", Rule: "AS_PATH segment with a segment length of 0", Ref: "RFC 7606 7.2",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(origin, attr(flagTransitive, 2, []byte{2, 0}), nextHop(bad)), nlriDefault)},
		{Name: "rfc7606-nexthop-bad-length", Rule: "NEXT_HOP of length 5", Ref: "RFC 7606 7.3",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(origin, asPath, attr(flagTransitive, 3, append(bad.AsSlice(), 0))), nlriDefault)},
		{Name: "rfc7606-med-bad-length", Rule: "MULTI_EXIT_DISC of length 2", Ref: "RFC 7606 7.4",
			Handling: TreatAsWithdraw, Msg: announceWith(bad, attr(flagOptional, 4, []byte{0, 1}))},
		{Name: "rfc7606-localpref-from-ebgp", Rule: "LOCAL_PREF from an external peer", Ref: "RFC 7606 7.5",
			Handling: AttributeDiscard, Msg: announceWith(disc, attr(flagTransitive, 5, []byte{0, 0, 0, 200}))},
		{Name: "rfc7606-localpref-bad-length-from-ebgp", Rule: "LOCAL_PREF of length 1 from an external peer", Ref: "RFC 7606 7.5",
			Handling: AttributeDiscard, GoBGP: TreatAsWithdraw, Deviation: "GoBGP validates the length before discarding an eBGP LOCAL_PREF: the route is withdrawn, not kept",
			Msg: announceWith(disc, attr(flagTransitive, 5, []byte{1}))},
		{Name: "rfc7606-atomic-aggregate-bad-length", Rule: "ATOMIC_AGGREGATE of length 1", Ref: "RFC 7606 7.6",
			Handling: AttributeDiscard, Msg: announceWith(disc, attr(flagTransitive, 6, []byte{1}))},
		{Name: "rfc7606-aggregator-bad-length", Rule: "AGGREGATOR of length 3", Ref: "RFC 7606 7.7",
			Handling: AttributeDiscard, Msg: announceWith(disc, attr(flagOptional|flagTransitive, 7, []byte{1, 2, 3}))},
		{Name: "rfc7606-communities-bad-length", Rule: "COMMUNITIES of length 5", Ref: "RFC 7606 7.8",
			Handling: TreatAsWithdraw, Msg: announceWith(bad, attr(flagOptional|flagTransitive, 8, []byte{0, 1, 0, 1, 9}))},
		{Name: "rfc7606-mp-reach-nexthop-length", Rule: "MP_REACH_NLRI (IPv4 unicast) with a next hop of length 5: the NLRI cannot be located",
			Ref: "RFC 7606 7.11, RFC 4760 7", Handling: SessionReset, Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_OPTIONAL_ATTRIBUTE_ERROR,
			GoBGP: SessionReset, GoBGPCode: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, GoBGPSubco: bgp.BGP_ERROR_SUB_ATTRIBUTE_LENGTH_ERROR, Deviation: "GoBGP sends Attribute Length Error (3/5, RFC 4271 6.3) rather than Optional Attribute Error (3/9, RFC 4760 7)",
			Msg: update(nil, cat(origin, asPath, attr(flagOptional, 14, cat([]byte{0, 1, 1, 5}, bad.AsSlice(), []byte{0, 0}, nlriDefault))), nil)},
		{Name: "rfc7606-wellknown-flags-conflict", Rule: "ORIGIN with the Optional flag set", Ref: "RFC 7606 3(c)",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(attr(flagOptional|flagTransitive, 1, []byte{0}), asPath, nextHop(bad)), nlriDefault)},
		{Name: "rfc7606-missing-mandatory-nexthop", Rule: "NLRI without a NEXT_HOP", Ref: "RFC 7606 3(d)",
			Handling: TreatAsWithdraw, Msg: update(nil, cat(origin, asPath), nlriDefault)},
		{Name: "rfc7606-duplicate-attribute", Rule: "MULTI_EXIT_DISC twice: all but the first are discarded", Ref: "RFC 7606 3(g)",
			Handling: AttributeDiscard, Msg: announceWith(disc, attr(flagOptional, 4, []byte{0, 0, 0, 1}), attr(flagOptional, 4, []byte{0, 0, 0, 2}))},
		{Name: "rfc7606-duplicate-mp-reach", Rule: "MP_REACH_NLRI twice", Ref: "RFC 7606 3(g)",
			Handling: SessionReset, Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST,
			Msg: func() []byte {
				mp := attr(flagOptional, 14, cat([]byte{0, 1, 1, 4}, bad.AsSlice(), []byte{0}, nlriDefault))
				return update(nil, cat(origin, asPath, mp, mp), nil)
			}()},
		{Name: "rfc7606-attribute-length-overrun", Rule: "last attribute's length runs past the Total Path Attribute Length",
			Ref: "RFC 7606 4", Handling: TreatAsWithdraw,
			GoBGP: Ignored, Deviation: "GoBGP stops at the overrun and does not withdraw the NLRI after the attributes: the previous route stays",
			Msg: update(nil, cat(origin, asPath, nextHop(bad), attrLen(flagOptional, 4, 40, []byte{0, 0, 0, 1})), nlriDefault)},
		{Name: "rfc7606-nlri-prefix-too-long", Rule: "NLRI prefix length 33", Ref: "RFC 7606 5.3",
			Handling: SessionReset, Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_INVALID_NETWORK_FIELD,
			Msg: update(nil, cat(origin, asPath, nextHop(bad)), []byte{33, 10, 0, 0, 0, 1})},
		{Name: "rfc6793-as4path-malformed", Rule: "AS4_PATH with a segment overrun: discarded, AS_PATH used", Ref: "RFC 6793 6, RFC 7606 7.2",
			Handling: AttributeDiscard, GoBGP: TreatAsWithdraw, Deviation: "GoBGP treats the UPDATE as withdraw instead of discarding AS4_PATH: the route is lost, nothing malformed is used",
			Msg: announceWith(disc, attr(flagOptional|flagTransitive, 17, cat([]byte{2, 3}, asn4(PeerASN))))},
		{Name: "rfc4271-unrecognized-wellknown", Rule: "well-known (Optional clear) attribute of unknown type 99", Ref: "RFC 4271 6.3 (unchanged by RFC 7606)",
			Handling: SessionReset, Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
			Msg: announceWith(bad, attr(flagTransitive, 99, []byte{1, 2, 3, 4}))},
		{Name: "rfc4271-truncated-message", Rule: "UPDATE whose header length (21) is below the minimum (23)", Ref: "RFC 4271 6.1",
			Handling: SessionReset, Code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, Subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH,
			GoBGP: SessionReset, GoBGPCode: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, GoBGPSubco: bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, Deviation: "GoBGP answers Malformed Attribute List (3/1), not Bad Message Length (1/2)",
			Msg: messageLen(bgp.BGP_MSG_UPDATE, []byte{0, 0}, bgp.BGP_HEADER_LENGTH+2)},
		{Name: "rfc4271-withdrawn-length-overrun", Rule: "Withdrawn Routes Length (200) past the end of the message", Ref: "RFC 4271 6.3, RFC 7606 3(a)",
			Handling: SessionReset, Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST,
			Msg: Message(bgp.BGP_MSG_UPDATE, cat([]byte{0, 200}, []byte{8, 10}, []byte{0, 0}))},
	}
	cves := []Case{
		{Name: "cve-2026-30405-nexthop-short", Rule: "NEXT_HOP of length 2 followed by a cut NLRI (panic in ValidateAttribute)",
			Ref: "CVE-2026-30405, GHSA-4p9m-8gc4-rw2h, osrg/gobgp#3305, fix 583080a (v4.4.0)", Handling: TreatAsWithdraw,
			Msg: update(nil, cat(attr(flagTransitive, 1, []byte{2}), attr(flagTransitive, 2, nil), attr(flagTransitive, 3, []byte{1, 2}), []byte{1}), nlriDefault)},
		{Name: "cve-2026-41642-unknown-wellknown", Rule: "unrecognized well-known attribute (nil error dereferenced in the FSM)",
			Ref: "CVE-2026-41642, GHSA-7235-89m6-f4px, fix 215aee0 (v4.4.0)", Handling: SessionReset,
			Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
			Msg: update(nil, cat(origin, attr(flagTransitive, 0xfe, nil), asPath, nextHop(bad)), nlriDefault)},
		{Name: "cve-2026-41643-as4path-before-aspath", Rule: "AS4_PATH (wrong flags, length 1) before AS_PATH (index out of range in UpdatePathAttrs4ByteAs)",
			Ref: "CVE-2026-41643, GHSA-8rxh-r2p6-7f2q, osrg/gobgp#3308, fix 9fe96a9 (v4.3.0)", Handling: TreatAsWithdraw,
			Msg: update(nil, cat(attr(flagTransitive, 17, []byte{2}), attr(flagTransitive, 2, []byte{0xff, 0xff, 0xde, 0xad}), origin, nextHop(bad)), nlriDefault)},
		{Name: "cve-2026-42285-withdraw-unconfigured-family", Rule: "treat-as-withdraw UPDATE carrying MP_REACH_NLRI for IPv6 unicast, not negotiated (nil table in AdjRib.Update)",
			Ref: "CVE-2026-42285, GHSA-p3w2-64xm-833j, fix d2d2be3 (v4.5.0)", Handling: TreatAsWithdraw,
			Msg: func() []byte {
				v6 := cat([]byte{0, 2, 1, 16}, netip.MustParseAddr("2001:db8::fe").AsSlice(), []byte{0}, []byte{0})
				return update(nil, cat(attr(flagOptional|flagTransitive, 1, []byte{0}), asPath, nextHop(bad), attr(flagOptional, 14, v6)), nlriDefault)
			}()},
		{Name: "cve-2026-37462-withdrawn-underflow", Rule: "Withdrawn Routes Length 2 holding a /32 (5 bytes): uint16 underflow in BGPUpdate.DecodeFromBytes",
			Ref: "CVE-2026-37462, GO-2026-5971, fix 9ce8936 (v4.4.0)", Handling: SessionReset,
			Code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST,
			Msg: Message(bgp.BGP_MSG_UPDATE, cat([]byte{0, 2, 32, 10, 0, 0, 1}, make([]byte, 64), []byte{0, 0}))},
		{Name: "cve-2026-37462-attributes-underflow", Rule: "Total Path Attribute Length 3 holding a 4-byte ORIGIN: uint16 underflow",
			Ref: "CVE-2026-37462, GO-2026-5971, fix 9ce8936 (v4.4.0)", Handling: TreatAsWithdraw,
			GoBGP: Ignored, Deviation: "after the fix GoBGP rejects the attributes and, unable to locate the NLRI, keeps the session and the previous route",
			Msg: func() []byte {
				body := cat([]byte{0, 0, 0, 3}, origin)
				for range 20 {
					body = append(body, flagOptional|flagTransitive, 0xff, 0)
				}
				return Message(bgp.BGP_MSG_UPDATE, body)
			}()},
		{Name: "cve-2026-37461-ipv6-extcommunity-short", Rule: "IPv6 address-specific extended community of 8 bytes (20 needed): out-of-bounds read in ParseIP6Extended",
			Ref: "CVE-2026-37461, GO-2026-5713, fix 362cce3 (v4.4.0)", Handling: TreatAsWithdraw,
			Msg: announceWith(bad, attr(flagOptional|flagTransitive, 25, []byte{0, 2, 0x20, 0x01, 0x0d, 0xb8, 0, 1}))},
		{Name: "cve-2026-7734-srv6-unknown-subtlv", Rule: "PREFIX_SID with an SRv6 L3 Service TLV holding an unknown sub-TLV (infinite loop)",
			Ref: "CVE-2026-7734, GO-2026-5665, fix f9f7b55 (v4.4.0)", Handling: AttributeDiscard,
			Msg: announceWith(disc, attr(flagOptional|flagTransitive, 40, []byte{5, 0, 7, 0, 0xff, 0, 3, 1, 2, 3}))},
		{Name: "cve-2026-49838-empty-aspath", Rule: "zero-length AS_PATH from an external peer (panic in the confederation check)",
			Ref: "CVE-2026-49838, GHSA-frrj-87jh-2772, fix 4a319a6 (v4.7.0)", Handling: TreatAsWithdraw,
			Msg: update(nil, cat(origin, attr(flagTransitive, 2, nil), nextHop(bad)), nlriDefault)},
		{Name: "cve-2026-49837-open-caplen", Kind: KindOpen, Rule: "OPEN whose 4-octet-AS capability has CapLen 0 (value read from the next capability)",
			Ref: "CVE-2026-49837, GHSA-gjrg-jjr3-56cm, fix f02ca39 (v4.6.0)", Handling: SessionReset,
			Code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, Subcode: bgp.BGP_ERROR_SUB_UNSUPPORTED_CAPABILITY,
			Msg: func() []byte {
				caps := cat([]byte{65, 0}, []byte{1, 4, 0, 1, 0, 1}, []byte{2, 0}) // 4-octet AS len 0, MP ipv4/unicast, route refresh
				opt := cat([]byte{2, byte(len(caps))}, caps)
				body := cat([]byte{4, 0xfe, 0x4c, 0, 9}, netip.MustParseAddr("192.0.2.1").AsSlice(), []byte{byte(len(opt))}, opt)
				return Message(bgp.BGP_MSG_OPEN, body)
			}()},
		{Name: "cve-2026-7736-mrt-rib-entry-underflow", Kind: KindMRT, Rule: "MRT RIB entry whose attribute length (3) is shorter than its ORIGIN (4): uint16 underflow in parseRibEntry",
			Ref: "CVE-2026-7736, GO-2026-5427, fix 76d9110 (v4.4.0); podrouter reads no MRT", Handling: ParserError,
			Msg: cat([]byte{0, 0, 0, 1}, []byte{24, 10, 0, 1}, []byte{0, 1}, []byte{0, 0}, []byte{0, 0, 0, 0}, []byte{0, 3}, origin, make([]byte, 8))},
		{Name: "cve-2026-7737-bmp-stats-short", Kind: KindBMP, Rule: "BMP Statistics Report body of 2 bytes (4 read unchecked)",
			Ref: "CVE-2026-7737, GO-2026-5699, fix bc77597 (v4.4.0); podrouter speaks no BMP", Handling: ParserError,
			Msg: []byte{0, 1}},
	}
	out := append(rfc, cves...)
	for i := range out {
		if out[i].Kind == "" {
			out[i].Kind = KindUpdate
		}
	}
	return out
}
