//! Judge an IP address against the IANA special-purpose registries and the operator's CIDRs.
//!
//! ```
//! use std::net::IpAddr;
//!
//! use warden_egress::{AddressDecision, AddressPolicy};
//!
//! let policy = AddressPolicy::default();
//! let metadata: IpAddr = "169.254.169.254".parse().unwrap();
//! let decision = policy.check(metadata);
//! assert!(!decision.is_allowed());
//! assert_eq!(
//!     decision.explain(metadata).to_string(),
//!     "denied: 169.254.169.254 is in 169.254.0.0/16 (link-local, RFC 3927)",
//! );
//!
//! // The IPv4 address inside an IPv6 one is judged too.
//! let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
//! assert!(matches!(
//!     policy.check(mapped),
//!     AddressDecision::Denied { how: Some("IPv4-mapped"), .. }
//! ));
//!
//! // The operator's allow list is the only way into a special-purpose range.
//! let lab = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()], vec![]);
//! assert!(lab.check(mapped).is_allowed());
//! ```
//!
//! # Design
//!
//! - **One reviewed table.** [`special_purpose_ranges`] is a `static` array built at compile
//!   time (const `IpNet` constructors): every block that the IANA IPv4 and IPv6 Special-Purpose
//!   Address Registries mark *not* globally reachable (but see IPv4-mapped below), plus IPv4 and
//!   IPv6 multicast, the deprecated IPv6 site-local block, IPv4 limited broadcast and
//!   240.0.0.0/4. Every entry carries
//!   a short name and the RFC that defines it, and a comment saying why it is there. Where blocks
//!   overlap, the more specific block comes first so a decision names the most precise range
//!   (a test enforces that no entry is shadowed by an earlier one).
//! - **Registry exceptions are data too.** The registry marks 2001::/23 not globally reachable
//!   "unless allowed by a more specific allocation", and lists seven such allocations as globally
//!   reachable. They live in [`globally_reachable_exceptions`], right next to the table, and an
//!   address inside one of them is not denied by the block that contains it.
//! - **192.0.0.0/24 is denied whole.** The registry marks 192.0.0.9/32 (PCP anycast) and
//!   192.0.0.10/32 (TURN anycast) globally reachable. They are *not* excepted here: both are
//!   anycast addresses answered by the *nearest* such server, typically the operator's own
//!   network equipment, and nothing an agent fetches lives there. An operator who needs them adds
//!   an allow CIDR.
//! - **Embedded IPv4 addresses are unwrapped.** For an IPv6 address the IPv4 address embedded in
//!   it is judged as well: IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, except `::`
//!   and `::1`, which are the IPv6 unspecified and loopback addresses), NAT64 (`64:ff9b::/96`,
//!   RFC 6052), 6to4 (`2002::/16`, bits 16..48, RFC 3056) and Teredo (`2001::/32`, RFC 4380: the
//!   client address is the last 32 bits inverted, the server address is bits 32..64). A
//!   denial names the embedded address and how it was embedded.
//! - **IPv4-mapped addresses are the IPv4 address.** The registry marks `::ffff:0:0/96` not
//!   globally reachable because such packets never appear on the wire, but a dual-stack socket
//!   given `::ffff:a.b.c.d` simply connects to `a.b.c.d` over IPv4. So the block is not in the
//!   table and a mapped address is judged by its embedded address alone: `::ffff:10.0.0.1` is
//!   denied as private-use, `::ffff:8.8.8.8` is allowed like `8.8.8.8`.
//! - **Order.** [`AddressPolicy::check`] is a pure function: an operator deny CIDR wins; then the
//!   table (the address and its embedded IPv4 addresses); a table denial is lifted only by an
//!   operator allow CIDR. Operator CIDRs apply to the embedded IPv4 address too, so an allow of
//!   `127.0.0.0/8` allows `::ffff:127.0.0.1` and a deny of `8.8.8.0/24` denies
//!   `64:ff9b::808:808`. An allow that matches only an embedded address lifts the denial only if
//!   every embedded address is either allowed by the operator or not special-purpose, so allowing
//!   a Teredo server does not open its private client.
//! - **Hot path.** `check` walks the operator lists and a table of a few dozen entries with plain
//!   integer comparisons; it never allocates.
//!
//! # Limitations
//!
//! - The table is a snapshot of the IANA IPv4 and IPv6 Special-Purpose Address Registries as
//!   last updated 2025-10-09 (the IPv6 registry then ended with RFC 9780's 100:0:0:1::/64,
//!   allocated 2025-04). The registries change; a new non-global block is allowed here until
//!   the table is updated.
//! - "Globally reachable" is not "safe to reach": public addresses that route to the operator's
//!   own infrastructure (its public IPs, a cloud provider's metadata service on a public address,
//!   another tenant's service) are allowed unless the operator denies them.
//! - Only the well-known NAT64 prefix is unwrapped. A network-specific NAT64 prefix (RFC 6052
//!   section 2.2) looks like any global IPv6 address: deny it, or the IPv4 ranges behind it, in
//!   operator CIDRs. The SIIT "IPv4-translated" form `::ffff:0:a.b.c.d` is not unwrapped either
//!   (it lies in reserved `::/8` space and is not routed).
//! - Allowing a 2001::/23 exception or a public embedded IPv4 address is a statement about the
//!   registry, not about the path: connecting to a 6to4 or Teredo address still depends on the
//!   host's routes.
//! - This module judges parsed addresses. Spelling tricks (`0x7f.1`, `2130706433`, zone ids) are
//!   for the URL parser, and DNS answers must each be judged and pinned by the caller.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::ser::{Serialize, Serializer};

/// One entry of the special-purpose table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SpecialRange {
    /// The block; serialized as its CIDR string, e.g. `"169.254.0.0/16"`.
    #[serde(serialize_with = "serialize_cidr")]
    pub cidr: IpNet,
    /// Short lower-case name, e.g. `"loopback"`, `"documentation (TEST-NET-1)"`.
    pub name: &'static str,
    /// The RFC(s) defining the block, e.g. `"RFC 1918"`.
    pub source: &'static str,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.cidr, self.name, self.source)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix_len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix_len))
}

const fn v6(segments: [u16; 8], prefix_len: u8) -> IpNet {
    let [a, b, c, d, e, f, g, h] = segments;
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(a, b, c, d, e, f, g, h),
        prefix_len,
    ))
}

const fn range(cidr: IpNet, name: &'static str, source: &'static str) -> SpecialRange {
    SpecialRange { cidr, name, source }
}

/// The special-purpose table. More specific blocks come before the blocks containing them.
///
/// Unless a comment says otherwise, an entry is a block that the IANA IPv4 or IPv6
/// Special-Purpose Address Registry (RFC 6890) marks "Globally Reachable: False".
#[rustfmt::skip]
static SPECIAL_PURPOSE: [SpecialRange; 35] = [
    // ---- IPv4 ----
    // "This host on this network"; connecting to 0.0.0.0 reaches the local host on Linux.
    range(v4(0, 0, 0, 0, 32), "this host on this network", "RFC 1122"),
    // "This network": never a valid destination.
    range(v4(0, 0, 0, 0, 8), "this network", "RFC 791"),
    // Private-use: internal networks.
    range(v4(10, 0, 0, 0, 8), "private-use", "RFC 1918"),
    // Shared address space: carrier-grade NAT, the ISP's side of the subscriber's NAT.
    range(v4(100, 64, 0, 0, 10), "shared address space", "RFC 6598"),
    // Loopback: the host itself.
    range(v4(127, 0, 0, 0, 8), "loopback", "RFC 1122"),
    // Link-local; holds the cloud metadata services at 169.254.169.254.
    range(v4(169, 254, 0, 0, 16), "link-local", "RFC 3927"),
    // Private-use.
    range(v4(172, 16, 0, 0, 12), "private-use", "RFC 1918"),
    // Inside 192.0.0.0/24: DS-Lite / 464XLAT service continuity prefix.
    range(v4(192, 0, 0, 0, 29), "IPv4 service continuity prefix", "RFC 7335"),
    // Inside 192.0.0.0/24: the IPv4 dummy address.
    range(v4(192, 0, 0, 8, 32), "IPv4 dummy address", "RFC 7600"),
    // Inside 192.0.0.0/24: well-known addresses for NAT64 prefix discovery (ipv4only.arpa).
    range(v4(192, 0, 0, 170, 32), "NAT64/DNS64 discovery", "RFC 8880, RFC 7050"),
    range(v4(192, 0, 0, 171, 32), "NAT64/DNS64 discovery", "RFC 8880, RFC 7050"),
    // IETF protocol assignments. Denied whole, including 192.0.0.9/32 (PCP anycast, RFC 7723)
    // and 192.0.0.10/32 (TURN anycast, RFC 8155), which the registry marks globally reachable:
    // both are answered by the nearest such server, usually the operator's own equipment.
    range(v4(192, 0, 0, 0, 24), "IETF protocol assignments", "RFC 6890"),
    // Documentation.
    range(v4(192, 0, 2, 0, 24), "documentation (TEST-NET-1)", "RFC 5737"),
    // 6a44 relay anycast. The rest of 192.88.99.0/24, the 6to4 relay anycast block terminated
    // by RFC 7526, has no reachability flags in the registry any more and is not denied.
    range(v4(192, 88, 99, 2, 32), "6a44-relay anycast", "RFC 6751"),
    // Private-use.
    range(v4(192, 168, 0, 0, 16), "private-use", "RFC 1918"),
    // Benchmarking: 198.18.0.0 to 198.19.255.255.
    range(v4(198, 18, 0, 0, 15), "benchmarking", "RFC 2544"),
    // Documentation.
    range(v4(198, 51, 100, 0, 24), "documentation (TEST-NET-2)", "RFC 5737"),
    // Documentation.
    range(v4(203, 0, 113, 0, 24), "documentation (TEST-NET-3)", "RFC 5737"),
    // Not in the special-purpose registry: multicast (IPv4 Multicast Address Space Registry).
    // Never a unicast destination.
    range(v4(224, 0, 0, 0, 4), "multicast", "RFC 5771"),
    // Limited broadcast; listed before 240.0.0.0/4, which contains it.
    range(v4(255, 255, 255, 255, 32), "limited broadcast", "RFC 919, RFC 8190"),
    // Reserved (the former class E).
    range(v4(240, 0, 0, 0, 4), "reserved", "RFC 1112"),

    // ---- IPv6 ----
    // The unspecified address; connecting to :: reaches the local host on Linux.
    range(v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified", "RFC 4291"),
    // Loopback: the host itself.
    range(v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback", "RFC 4291"),
    // Deliberately absent: ::ffff:0:0/96 (IPv4-mapped, RFC 4291). The registry marks it not
    // globally reachable because such packets never appear on the wire; a socket given a
    // mapped address connects over IPv4 to the embedded address, so a mapped address is judged
    // by its embedded IPv4 address alone (::ffff:10.0.0.1 denied, ::ffff:8.8.8.8 allowed).
    // Local-use IPv4/IPv6 translation (a site's own NAT64). The well-known 64:ff9b::/96 is
    // globally reachable and is judged by its embedded IPv4 address instead.
    range(v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use IPv4/IPv6 translation", "RFC 8215"),
    // Discard-only (remotely triggered black holes).
    range(v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only", "RFC 6666"),
    // Dummy IPv6 prefix (for hosts without a global address).
    range(v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64), "dummy IPv6 prefix", "RFC 9780"),
    // Inside 2001::/23: benchmarking.
    range(v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), "benchmarking", "RFC 5180"),
    // IETF protocol assignments: denied except for the globally reachable allocations in
    // GLOBALLY_REACHABLE_EXCEPTIONS. Also covers Teredo (2001::/32, reachability "N/A" in the
    // registry; its embedded addresses are judged and reported first) and the terminated
    // ORCHID block 2001:10::/28 (no flags any more).
    range(v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "IETF protocol assignments", "RFC 2928"),
    // Documentation.
    range(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation", "RFC 3849"),
    // Documentation (the 2024 addition).
    range(v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation", "RFC 9637"),
    // Segment Routing (SRv6) SIDs: a provider's internal forwarding identifiers.
    range(v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), "segment routing (SRv6) SIDs", "RFC 9602"),
    // Unique-local: the IPv6 private-use space.
    range(v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique-local", "RFC 4193, RFC 8190"),
    // Link-local.
    range(v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local", "RFC 4291"),
    // Not in the special-purpose registry: site-local, deprecated by RFC 3879 but still
    // routed inside some networks.
    range(v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local (deprecated)", "RFC 3879"),
    // Not in the special-purpose registry: multicast. Never a unicast destination.
    range(v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast", "RFC 4291"),
];

/// Globally reachable allocations inside a denied block: the entries of the IANA IPv6
/// Special-Purpose Address Registry inside 2001::/23 marked "Globally Reachable: True".
#[rustfmt::skip]
static GLOBALLY_REACHABLE_EXCEPTIONS: [SpecialRange; 7] = [
    range(v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128), "Port Control Protocol anycast", "RFC 7723"),
    range(v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128), "TURN anycast", "RFC 8155"),
    range(v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128), "DNS-SD SRP anycast", "RFC 9665"),
    range(v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32), "AMT", "RFC 7450"),
    range(v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48), "AS112-v6", "RFC 7535"),
    range(v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28), "ORCHIDv2", "RFC 7343"),
    range(v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28), "drone remote ID tags (DETs)", "RFC 9374"),
];

/// The special-purpose table: every block the IANA IPv4 and IPv6 Special-Purpose Address
/// Registries mark not globally reachable, plus multicast (224.0.0.0/4, ff00::/8), the
/// deprecated site-local fec0::/10, 255.255.255.255/32 and 240.0.0.0/4.
///
/// One registry block is left out on purpose: `::ffff:0:0/96` (IPv4-mapped), whose addresses
/// [`AddressPolicy::check`] judges by the IPv4 address they map.
///
/// More specific blocks come first. Addresses inside [`globally_reachable_exceptions`] are not
/// denied by the block containing them.
pub fn special_purpose_ranges() -> &'static [SpecialRange] {
    &SPECIAL_PURPOSE
}

/// The registry's globally reachable allocations inside blocks of
/// [`special_purpose_ranges`] (all inside 2001::/23); [`AddressPolicy::check`] allows them.
pub fn globally_reachable_exceptions() -> &'static [SpecialRange] {
    &GLOBALLY_REACHABLE_EXCEPTIONS
}

/// The special-purpose range `address` is in, if any (the address alone, nothing embedded).
fn special_range(address: IpAddr) -> Option<&'static SpecialRange> {
    SPECIAL_PURPOSE.iter().find(|entry| {
        contains(entry.cidr, address)
            && !GLOBALLY_REACHABLE_EXCEPTIONS.iter().any(|exception| {
                contains(exception.cidr, address) && entry.cidr.contains(&exception.cidr)
            })
    })
}

/// The verdict on one address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum AddressDecision {
    /// Allowed; `by_operator` when only an operator allow-CIDR made it reachable.
    Allowed {
        /// The operator allow CIDR that lifted a special-purpose denial.
        #[serde(serialize_with = "serialize_opt_cidr")]
        by_operator: Option<IpNet>,
    },
    /// In a special-purpose range (of `address` itself, or of the IPv4 address embedded in it).
    Denied {
        /// The table entry.
        range: SpecialRange,
        /// The embedded IPv4 address that is in `range`; `None` when the address itself is.
        embedded: Option<Ipv4Addr>,
        /// How `embedded` was embedded: `"IPv4-mapped"`, `"IPv4-compatible"`,
        /// `"NAT64 (64:ff9b::/96)"`, `"6to4"`, `"Teredo"` (the client) or
        /// `"Teredo server"`.
        how: Option<&'static str>,
    },
    /// In an operator deny-CIDR (the address itself or the IPv4 address embedded in it).
    DeniedByOperator {
        /// The operator deny CIDR.
        #[serde(serialize_with = "serialize_cidr")]
        cidr: IpNet,
    },
}

impl AddressDecision {
    /// Whether the address may be connected to.
    pub fn is_allowed(&self) -> bool {
        matches!(self, AddressDecision::Allowed { .. })
    }

    /// The decision as one line naming the address it was made for, e.g.
    /// `denied: 169.254.169.254 is in 169.254.0.0/16 (link-local, RFC 3927)`.
    pub fn explain(&self, address: IpAddr) -> impl fmt::Display + '_ {
        Explained {
            decision: self,
            address: Some(address),
        }
    }
}

impl fmt::Display for AddressDecision {
    /// One line, e.g. `denied: the address is in 169.254.0.0/16 (link-local, RFC 3927)`; see
    /// [`AddressDecision::explain`] for the same line naming the address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Explained {
            decision: self,
            address: None,
        }
        .fmt(f)
    }
}

struct Explained<'a> {
    decision: &'a AddressDecision,
    address: Option<IpAddr>,
}

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AddressDecision::{Allowed, Denied, DeniedByOperator};

        let verdict = if self.decision.is_allowed() {
            "allowed"
        } else {
            "denied"
        };
        match self.address {
            Some(address) => write!(f, "{verdict}: {address} ")?,
            None => write!(f, "{verdict}: the address ")?,
        }
        match self.decision {
            Allowed { by_operator: None } => f.write_str("is not in any special-purpose range"),
            Allowed {
                by_operator: Some(cidr),
            } => write!(f, "is covered by operator allow-list entry {cidr}"),
            Denied {
                range,
                embedded: None,
                ..
            } => write!(f, "is in {range}"),
            Denied {
                range,
                embedded: Some(inner),
                how,
            } => {
                let how = how.unwrap_or("embedded");
                write!(f, "embeds {inner} ({how}), which is in {range}")
            }
            DeniedByOperator { cidr } => write!(f, "is covered by operator deny-list entry {cidr}"),
        }
    }
}

/// Operator allow and deny CIDRs around the special-purpose table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Operator allow CIDRs: the only way to reach a special-purpose range.
    pub allow: Vec<IpNet>,
    /// Operator deny CIDRs: win over everything.
    pub deny: Vec<IpNet>,
}

/// An IPv4 address found inside an IPv6 address, and how it was embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Embedded {
    address: Ipv4Addr,
    how: &'static str,
}

/// The IPv4 addresses embedded in `address` (at most two: a Teredo client and server).
fn embedded_ipv4(address: Ipv6Addr) -> [Option<Embedded>; 2] {
    let s = address.segments();
    let pair = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let one = |address: Ipv4Addr, how: &'static str| [Some(Embedded { address, how }), None];
    match s {
        // ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2).
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => one(pair(hi, lo), "IPv4-mapped"),
        // ::a.b.c.d (RFC 4291 section 2.5.5.1, deprecated); :: and ::1 are IPv6's own
        // unspecified and loopback addresses and are judged as such.
        [0, 0, 0, 0, 0, 0, hi, lo] if !(hi == 0 && lo <= 1) => one(pair(hi, lo), "IPv4-compatible"),
        // 64:ff9b::a.b.c.d, the well-known NAT64 prefix (RFC 6052 section 2.1).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => one(pair(hi, lo), "NAT64 (64:ff9b::/96)"),
        // 2002:AABB:CCDD::/48, 6to4 (RFC 3056 section 2): the IPv4 address is bits 16..48.
        [0x2002, hi, lo, ..] => one(pair(hi, lo), "6to4"),
        // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, Teredo (RFC 4380 section 4): the server is
        // bits 32..64, the client is the last 32 bits inverted. The client comes first: it is
        // the host the packets are meant for.
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => [
            Some(Embedded {
                address: pair(!client_hi, !client_lo),
                how: "Teredo",
            }),
            Some(Embedded {
                address: pair(server_hi, server_lo),
                how: "Teredo server",
            }),
        ],
        _ => [None, None],
    }
}

/// The first CIDR of `list` containing `address`.
fn first_containing(list: &[IpNet], address: IpAddr) -> Option<IpNet> {
    list.iter().copied().find(|&cidr| contains(cidr, address))
}

/// Whether `cidr` contains `address`: `IpNet::contains` with one masked comparison instead of
/// computing the network and broadcast addresses (this runs for every table entry).
fn contains(cidr: IpNet, address: IpAddr) -> bool {
    match (cidr, address) {
        (IpNet::V4(net), IpAddr::V4(addr)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix_len()))
                .unwrap_or(0);
            (u32::from(net.addr()) ^ u32::from(addr)) & mask == 0
        }
        (IpNet::V6(net), IpAddr::V6(addr)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(net.prefix_len()))
                .unwrap_or(0);
            (u128::from(net.addr()) ^ u128::from(addr)) & mask == 0
        }
        _ => false,
    }
}

impl AddressPolicy {
    /// A policy with operator allow and deny CIDRs.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        Self { allow, deny }
    }

    /// Judge one address. Pure and allocation-free.
    ///
    /// Order: an operator deny CIDR containing the address or an IPv4 address embedded in it
    /// wins; otherwise the special-purpose table judges the embedded IPv4 addresses (reported
    /// first, they say more) and the address itself; a table denial is lifted only by an
    /// operator allow CIDR containing the address itself, or containing an embedded IPv4
    /// address when every embedded address is operator-allowed or not special-purpose.
    /// Everything else is allowed.
    pub fn check(&self, address: IpAddr) -> AddressDecision {
        let embedded = match address {
            IpAddr::V4(_) => [None, None],
            IpAddr::V6(v6) => embedded_ipv4(v6),
        };

        // 1. Operator deny wins, for the address and for what it embeds.
        let deny_hit = first_containing(&self.deny, address).or_else(|| {
            embedded
                .iter()
                .flatten()
                .find_map(|e| first_containing(&self.deny, IpAddr::V4(e.address)))
        });
        if let Some(cidr) = deny_hit {
            return AddressDecision::DeniedByOperator { cidr };
        }

        // 2. The special-purpose table.
        let Some(denial) = table_denial(address, &embedded) else {
            return AddressDecision::Allowed { by_operator: None };
        };

        // 3. Only an operator allow lifts a table denial.
        match self.operator_allow(address, &embedded) {
            Some(cidr) => AddressDecision::Allowed {
                by_operator: Some(cidr),
            },
            None => denial,
        }
    }

    fn operator_allow(&self, address: IpAddr, embedded: &[Option<Embedded>; 2]) -> Option<IpNet> {
        if let Some(cidr) = first_containing(&self.allow, address) {
            return Some(cidr);
        }
        let mut allowed_by = None;
        for e in embedded.iter().flatten() {
            let inner = IpAddr::V4(e.address);
            match first_containing(&self.allow, inner) {
                Some(cidr) => {
                    allowed_by = allowed_by.or(Some(cidr));
                }
                // An embedded address that is special-purpose and not allowed keeps the whole
                // address denied, whatever else the operator allowed.
                None if special_range(inner).is_some() => return None,
                None => {}
            }
        }
        allowed_by
    }
}

/// The table's denial of `address`, judging its embedded IPv4 addresses first.
fn table_denial(address: IpAddr, embedded: &[Option<Embedded>; 2]) -> Option<AddressDecision> {
    embedded
        .iter()
        .flatten()
        .find_map(|e| {
            special_range(IpAddr::V4(e.address)).map(|range| AddressDecision::Denied {
                range: *range,
                embedded: Some(e.address),
                how: Some(e.how),
            })
        })
        .or_else(|| {
            special_range(address).map(|range| AddressDecision::Denied {
                range: *range,
                embedded: None,
                how: None,
            })
        })
}

/// Serialize an `IpNet` as its CIDR string (ipnet's own serde feature is not enabled).
fn serialize_cidr<S: Serializer>(cidr: &IpNet, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(cidr)
}

fn serialize_opt_cidr<S: Serializer>(
    cidr: &Option<IpNet>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct AsCidr<'a>(&'a IpNet);
    impl Serialize for AsCidr<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self.0)
        }
    }
    match cidr {
        Some(cidr) => serializer.serialize_some(&AsCidr(cidr)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn check(s: &str) -> AddressDecision {
        AddressPolicy::default().check(ip(s))
    }

    #[track_caller]
    fn assert_allowed(s: &str) {
        let decision = check(s);
        assert_eq!(
            decision,
            AddressDecision::Allowed { by_operator: None },
            "{s} should be allowed, got: {decision}"
        );
    }

    /// Denied by the table, in the range `cidr`; returns the decision.
    #[track_caller]
    fn assert_denied_in(s: &str, cidr: &str) -> AddressDecision {
        let decision = check(s);
        match &decision {
            AddressDecision::Denied { range, .. } => {
                assert_eq!(range.cidr, net(cidr), "{s}: {decision}");
            }
            other => panic!("{s} should be denied in {cidr}, got: {other}"),
        }
        decision
    }

    #[track_caller]
    fn assert_denied_embedded(s: &str, cidr: &str, embedded: &str, how: &str) {
        let decision = check(s);
        let AddressDecision::Denied {
            range,
            embedded: Some(got),
            how: Some(got_how),
        } = decision
        else {
            panic!("{s} should be denied via its embedded {embedded}, got: {decision}");
        };
        assert_eq!(range.cidr, net(cidr), "{s}");
        assert_eq!(IpAddr::V4(got), ip(embedded), "{s}");
        assert_eq!(got_how, how, "{s}");
    }

    fn last(cidr: &IpNet) -> IpAddr {
        cidr.broadcast()
    }

    fn first(cidr: &IpNet) -> IpAddr {
        cidr.network()
    }

    // ---- the table itself ----

    #[test]
    fn every_entry_denies_its_first_and_last_address() {
        for entry in special_purpose_ranges() {
            for address in [first(&entry.cidr), last(&entry.cidr)] {
                let decision = AddressPolicy::default().check(address);
                assert!(
                    !decision.is_allowed(),
                    "{address} of {entry} allowed: {decision}"
                );
            }
        }
    }

    #[test]
    fn ipv4_entries_report_themselves_or_a_more_specific_entry() {
        for entry in special_purpose_ranges() {
            for address in [first(&entry.cidr), last(&entry.cidr)] {
                let AddressDecision::Denied { range, .. } = AddressPolicy::default().check(address)
                else {
                    panic!("{address} not denied");
                };
                if address.is_ipv4() {
                    assert!(entry.cidr.contains(&range.cidr), "{address}: {range}");
                }
            }
        }
    }

    #[test]
    fn no_entry_is_shadowed_by_an_earlier_one() {
        let table = special_purpose_ranges();
        for (i, later) in table.iter().enumerate() {
            for earlier in &table[..i] {
                assert!(
                    !earlier.cidr.contains(&later.cidr),
                    "{later} is unreachable behind {earlier}"
                );
            }
        }
    }

    #[test]
    fn entries_are_canonical_named_and_cited() {
        for entry in special_purpose_ranges()
            .iter()
            .chain(globally_reachable_exceptions())
        {
            assert_eq!(entry.cidr, entry.cidr.trunc(), "{entry} has host bits set");
            assert!(!entry.name.is_empty(), "{entry}");
            assert!(entry.source.starts_with("RFC "), "{entry}");
        }
        assert_eq!(special_purpose_ranges().len(), 35);
    }

    #[test]
    fn exceptions_are_inside_a_denied_block_and_allowed_edge_to_edge() {
        for exception in globally_reachable_exceptions() {
            assert!(
                special_purpose_ranges()
                    .iter()
                    .any(|entry| entry.cidr.contains(&exception.cidr)),
                "{exception} excepts nothing"
            );
            for address in [first(&exception.cidr), last(&exception.cidr)] {
                assert_eq!(
                    AddressPolicy::default().check(address),
                    AddressDecision::Allowed { by_operator: None },
                    "{exception}"
                );
            }
        }
    }

    #[test]
    fn fast_contains_agrees_with_ipnet() {
        let cidrs = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.1.2.3/8",
            "1.2.3.4/32",
            "::/0",
            "::1/128",
            "2001::/23",
            "fe80::1/10",
            "ff00::/8",
        ];
        let addresses = [
            "0.0.0.0",
            "9.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "11.0.0.0",
            "1.2.3.4",
            "1.2.3.5",
            "::",
            "::1",
            "::2",
            "2001:1ff::",
            "2001:200::",
            "fe80::",
            "febf::",
            "fec0::",
            "ff00::",
            "255.255.255.255",
        ];
        for cidr in cidrs.map(net) {
            for address in addresses.map(ip) {
                assert_eq!(
                    contains(cidr, address),
                    cidr.contains(&address),
                    "{cidr} {address}"
                );
            }
        }
    }

    // ---- IPv4 edges ----

    #[test]
    fn ipv4_private_and_local_ranges_and_their_public_neighbours() {
        assert_denied_in("0.0.0.0", "0.0.0.0/32");
        assert_denied_in("0.0.0.1", "0.0.0.0/8");
        assert_denied_in("0.255.255.255", "0.0.0.0/8");
        assert_allowed("1.0.0.0");
        assert_allowed("9.255.255.255");
        assert_denied_in("10.0.0.0", "10.0.0.0/8");
        assert_denied_in("10.255.255.255", "10.0.0.0/8");
        assert_allowed("11.0.0.0");
        assert_allowed("100.63.255.255");
        assert_denied_in("100.64.0.0", "100.64.0.0/10");
        assert_denied_in("100.127.255.255", "100.64.0.0/10");
        assert_allowed("100.128.0.0");
        assert_allowed("126.255.255.255");
        assert_denied_in("127.0.0.1", "127.0.0.0/8");
        assert_denied_in("127.255.255.255", "127.0.0.0/8");
        assert_allowed("128.0.0.0");
        assert_allowed("169.253.255.255");
        assert_denied_in("169.254.169.254", "169.254.0.0/16");
        assert_allowed("169.255.0.0");
        assert_allowed("172.15.255.255");
        assert_denied_in("172.16.0.0", "172.16.0.0/12");
        assert_denied_in("172.31.255.255", "172.16.0.0/12");
        assert_allowed("172.32.0.0");
        assert_allowed("192.167.255.255");
        assert_denied_in("192.168.0.0", "192.168.0.0/16");
        assert_denied_in("192.168.255.255", "192.168.0.0/16");
        assert_allowed("192.169.0.0");
        assert_allowed("198.17.255.255");
        assert_denied_in("198.18.0.0", "198.18.0.0/15");
        assert_denied_in("198.19.255.255", "198.18.0.0/15");
        assert_allowed("198.20.0.0");
    }

    #[test]
    fn ipv4_ietf_documentation_and_reserved_ranges() {
        assert_allowed("191.255.255.255");
        assert_denied_in("192.0.0.0", "192.0.0.0/29");
        assert_denied_in("192.0.0.7", "192.0.0.0/29");
        assert_denied_in("192.0.0.8", "192.0.0.8/32");
        // Registry: globally reachable; here: denied with the /24 (see the module docs).
        assert_denied_in("192.0.0.9", "192.0.0.0/24");
        assert_denied_in("192.0.0.10", "192.0.0.0/24");
        assert_denied_in("192.0.0.170", "192.0.0.170/32");
        assert_denied_in("192.0.0.171", "192.0.0.171/32");
        assert_denied_in("192.0.0.255", "192.0.0.0/24");
        assert_allowed("192.0.1.0");
        assert_denied_in("192.0.2.0", "192.0.2.0/24");
        assert_denied_in("192.0.2.255", "192.0.2.0/24");
        assert_allowed("192.0.3.0");
        assert_allowed("198.51.99.255");
        assert_denied_in("198.51.100.7", "198.51.100.0/24");
        assert_allowed("198.51.101.0");
        assert_allowed("203.0.112.255");
        assert_denied_in("203.0.113.255", "203.0.113.0/24");
        assert_allowed("203.0.114.0");
        assert_allowed("223.255.255.255");
        assert_denied_in("224.0.0.0", "224.0.0.0/4");
        assert_denied_in("239.255.255.255", "224.0.0.0/4");
        assert_denied_in("240.0.0.0", "240.0.0.0/4");
        assert_denied_in("255.255.255.254", "240.0.0.0/4");
        assert_denied_in("255.255.255.255", "255.255.255.255/32");
    }

    #[test]
    fn ipv4_blocks_the_registry_marks_globally_reachable_are_allowed() {
        assert_allowed("192.31.196.1"); // AS112-v4, RFC 7535
        assert_allowed("192.52.193.1"); // AMT, RFC 7450
        assert_allowed("192.175.48.1"); // direct delegation AS112, RFC 7534
        assert_allowed("192.88.99.1"); // terminated 6to4 relay anycast: no flags
        assert_denied_in("192.88.99.2", "192.88.99.2/32"); // 6a44 relay: not global
        assert_allowed("1.1.1.1");
        assert_allowed("8.8.8.8");
    }

    // ---- IPv6 ----

    #[test]
    fn ipv6_ranges_and_public_addresses() {
        assert_allowed("2606:4700::1111");
        assert_allowed("2001:4860:4860::8888");
        assert_allowed("2620:4f:8000::1"); // direct delegation AS112, RFC 7534
        assert_denied_in("::", "::/128");
        assert_denied_in("::1", "::1/128");
        assert_allowed("::ffff:8.8.8.8"); // judged as 8.8.8.8
        assert_allowed("::ffff:1.1.1.1");
        assert_denied_in("64:ff9b:1::1", "64:ff9b:1::/48");
        assert_denied_in("100::", "100::/64");
        assert_denied_in("100::ffff:ffff:ffff:ffff", "100::/64");
        assert_denied_in("100:0:0:1::1", "100:0:0:1::/64");
        assert_allowed("100:0:0:2::");
        assert_denied_in("2001:2::1", "2001:2::/48");
        assert_denied_in("2001:10::1", "2001::/23"); // terminated ORCHID
        assert_denied_in("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/23");
        assert_allowed("2001:200::1");
        assert_allowed("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_denied_in("2001:db8::", "2001:db8::/32");
        assert_denied_in("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32");
        assert_allowed("2001:db9::");
        assert_denied_in("3fff::1", "3fff::/20");
        assert_denied_in("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::/20");
        assert_allowed("3fff:1000::");
        assert_denied_in("5f00::1", "5f00::/16");
        assert_allowed("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_denied_in("fc00::", "fc00::/7");
        assert_denied_in("fd00:ec2::254", "fc00::/7");
        assert_denied_in("fe80::1", "fe80::/10");
        assert_denied_in("fec0::1", "fec0::/10");
        assert_denied_in("ff02::1", "ff00::/8");
    }

    #[test]
    fn ietf_assignment_exceptions_are_allowed_and_their_neighbours_are_not() {
        for allowed in [
            "2001:1::1",
            "2001:1::2",
            "2001:1::3",
            "2001:3::",
            "2001:3:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:4:112::",
            "2001:4:112:ffff:ffff:ffff:ffff:ffff",
            "2001:20::",
            "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:30::",
            "2001:3f:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert_allowed(allowed);
        }
        for denied in [
            "2001:1::",
            "2001:1::4",
            "2001:2:1::",
            "2001:4:111:ffff:ffff:ffff:ffff:ffff",
            "2001:4:113::",
            "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:40::",
        ] {
            assert_denied_in(denied, "2001::/23");
        }
    }

    // ---- embedded IPv4 ----

    #[test]
    fn embedded_ipv4_is_judged() {
        assert_denied_embedded(
            "::ffff:127.0.0.1",
            "127.0.0.0/8",
            "127.0.0.1",
            "IPv4-mapped",
        );
        assert_denied_embedded(
            "::ffff:169.254.169.254",
            "169.254.0.0/16",
            "169.254.169.254",
            "IPv4-mapped",
        );
        assert_denied_embedded("::ffff:0.0.0.0", "0.0.0.0/32", "0.0.0.0", "IPv4-mapped");
        assert_denied_embedded("::127.0.0.1", "127.0.0.0/8", "127.0.0.1", "IPv4-compatible");
        assert_denied_embedded("::10.1.2.3", "10.0.0.0/8", "10.1.2.3", "IPv4-compatible");
        assert_denied_embedded("::2", "0.0.0.0/8", "0.0.0.2", "IPv4-compatible");
        assert_allowed("::8.8.8.8");
        assert_denied_embedded(
            "64:ff9b::10.0.0.1",
            "10.0.0.0/8",
            "10.0.0.1",
            "NAT64 (64:ff9b::/96)",
        );
        assert_denied_embedded(
            "64:ff9b::169.254.169.254",
            "169.254.0.0/16",
            "169.254.169.254",
            "NAT64 (64:ff9b::/96)",
        );
        assert_allowed("64:ff9b::8.8.8.8");
        assert_denied_embedded("2002:7f00:1::1", "127.0.0.0/8", "127.0.0.1", "6to4");
        assert_denied_embedded(
            "2002:a9fe:a9fe::",
            "169.254.0.0/16",
            "169.254.169.254",
            "6to4",
        );
        assert_allowed("2002:0808:0808::1");
    }

    #[test]
    fn teredo_embeds_client_and_server() {
        // Server 65.54.227.120, client 10.0.0.1 (stored inverted: f5ff:fffe).
        let private_client = "2001:0:4136:e378:8000:63bf:f5ff:fffe";
        assert_denied_embedded(private_client, "10.0.0.0/8", "10.0.0.1", "Teredo");
        // Public client 8.8.8.8 (inverted: f7f7:f7f7), loopback server 127.0.0.1.
        assert_denied_embedded(
            "2001:0:7f00:1:8000:63bf:f7f7:f7f7",
            "127.0.0.0/8",
            "127.0.0.1",
            "Teredo server",
        );
        // Both public: still in 2001::/23, reported as the block itself.
        let decision = assert_denied_in("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "2001::/23");
        assert!(matches!(
            decision,
            AddressDecision::Denied {
                embedded: None,
                how: None,
                ..
            }
        ));
    }

    // ---- operator CIDRs ----

    #[test]
    fn operator_allow_is_the_only_way_into_a_special_range() {
        let policy = AddressPolicy::new(vec![net("127.0.0.0/8")], vec![]);
        let by_operator = AddressDecision::Allowed {
            by_operator: Some(net("127.0.0.0/8")),
        };
        assert_eq!(policy.check(ip("127.0.0.1")), by_operator);
        assert_eq!(policy.check(ip("::ffff:127.0.0.1")), by_operator);
        assert_eq!(policy.check(ip("64:ff9b::127.0.0.1")), by_operator);
        assert!(!policy.check(ip("10.0.0.1")).is_allowed());
        assert!(!policy.check(ip("::1")).is_allowed());
        assert!(!policy.check(ip("::ffff:10.0.0.1")).is_allowed());
        // A public address is allowed by the table, not by the operator.
        assert_eq!(
            AddressPolicy::new(vec![net("8.8.8.0/24")], vec![]).check(ip("8.8.8.8")),
            AddressDecision::Allowed { by_operator: None }
        );
    }

    #[test]
    fn operator_allow_of_one_teredo_half_does_not_open_the_other() {
        // Server 127.0.0.1 allowed, client 10.0.0.1 not.
        let teredo = ip("2001:0:7f00:1:8000:63bf:f5ff:fffe");
        let policy = AddressPolicy::new(vec![net("127.0.0.0/8")], vec![]);
        assert!(!policy.check(teredo).is_allowed());
        let both = AddressPolicy::new(vec![net("127.0.0.0/8"), net("10.0.0.0/8")], vec![]);
        assert!(both.check(teredo).is_allowed());
        let whole = AddressPolicy::new(vec![net("2001::/32")], vec![]);
        assert!(whole.check(teredo).is_allowed());
    }

    #[test]
    fn operator_deny_wins() {
        let policy = AddressPolicy::new(vec![net("8.8.8.0/24")], vec![net("8.8.8.0/24")]);
        let denied = AddressDecision::DeniedByOperator {
            cidr: net("8.8.8.0/24"),
        };
        assert_eq!(policy.check(ip("8.8.8.8")), denied);
        assert_eq!(policy.check(ip("64:ff9b::8.8.8.8")), denied);
        assert_eq!(policy.check(ip("2002:0808:0808::1")), denied);
        assert!(policy.check(ip("8.8.4.4")).is_allowed());
        let v6 = AddressPolicy::new(vec![], vec![net("2606:4700::/32")]);
        assert!(!v6.check(ip("2606:4700::1111")).is_allowed());
        assert!(v6.check(ip("2001:4860:4860::8888")).is_allowed());
    }

    // ---- output ----

    #[test]
    fn display_names_range_cidr_and_source() {
        for entry in special_purpose_ranges() {
            let decision = AddressPolicy::default().check(first(&entry.cidr));
            let AddressDecision::Denied { range, .. } = decision else {
                panic!("{entry}: {decision}");
            };
            let line = decision.to_string();
            assert!(line.starts_with("denied: "), "{line}");
            assert!(!line.contains('\n'), "{line}");
            for part in [range.name, range.source, &range.cidr.to_string()] {
                assert!(line.contains(part), "{line} lacks {part}");
            }
        }
        let metadata = ip("169.254.169.254");
        let decision = AddressPolicy::default().check(metadata);
        let line = decision.to_string();
        assert!(line.contains("link-local"), "{line}");
        assert!(line.contains("169.254.0.0/16"), "{line}");
        assert!(line.contains("RFC 3927"), "{line}");
        assert_eq!(
            decision.explain(metadata).to_string(),
            "denied: 169.254.169.254 is in 169.254.0.0/16 (link-local, RFC 3927)"
        );
        let mapped = ip("::ffff:127.0.0.1");
        assert_eq!(
            AddressPolicy::default()
                .check(mapped)
                .explain(mapped)
                .to_string(),
            "denied: ::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped), which is in \
             127.0.0.0/8 (loopback, RFC 1122)"
        );
        assert_eq!(
            check("8.8.8.8").explain(ip("8.8.8.8")).to_string(),
            "allowed: 8.8.8.8 is not in any special-purpose range"
        );
        let policy = AddressPolicy::new(vec![net("127.0.0.0/8")], vec![net("10.0.0.0/8")]);
        assert_eq!(
            policy.check(ip("127.0.0.1")).to_string(),
            "allowed: the address is covered by operator allow-list entry 127.0.0.0/8"
        );
        assert_eq!(
            policy.check(ip("10.0.0.1")).to_string(),
            "denied: the address is covered by operator deny-list entry 10.0.0.0/8"
        );
        assert_eq!(
            policy
                .check(ip("::ffff:10.0.0.1"))
                .explain(ip("::ffff:10.0.0.1"))
                .to_string(),
            "denied: ::ffff:10.0.0.1 is covered by operator deny-list entry 10.0.0.0/8"
        );
        assert_eq!(
            check("::127.0.0.1").to_string(),
            "denied: the address embeds 127.0.0.1 (IPv4-compatible), which is in 127.0.0.0/8 \
             (loopback, RFC 1122)"
        );
    }

    #[test]
    fn serializes_as_tagged_json() {
        let json = serde_json::to_value(check("::ffff:169.254.169.254")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "decision": "denied",
                "range": {"cidr": "169.254.0.0/16", "name": "link-local", "source": "RFC 3927"},
                "embedded": "169.254.169.254",
                "how": "IPv4-mapped",
            })
        );
        let policy = AddressPolicy::new(vec![net("10.0.0.0/8")], vec![net("192.0.2.0/24")]);
        assert_eq!(
            serde_json::to_value(policy.check(ip("10.1.1.1"))).unwrap(),
            serde_json::json!({"decision": "allowed", "by_operator": "10.0.0.0/8"})
        );
        assert_eq!(
            serde_json::to_value(policy.check(ip("192.0.2.1"))).unwrap(),
            serde_json::json!({"decision": "denied_by_operator", "cidr": "192.0.2.0/24"})
        );
        assert_eq!(
            serde_json::to_value(check("1.1.1.1")).unwrap(),
            serde_json::json!({"decision": "allowed", "by_operator": null})
        );
    }
}
