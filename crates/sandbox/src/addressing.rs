//! Address plan: sandbox slot `N` (1 to 254) owns 10.241.N.0/24 (host ↔ sandbox) and
//! 10.242.N.0/24 (sandbox ↔ db), and the host interface `msbN`. Pure functions only.

use std::{collections::BTreeSet, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

/// The lowest and highest slot numbers.
const SLOTS: std::ops::RangeInclusive<u8> = 1..=254;

/// Every address and interface name derived from one sandbox slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxAddresses {
    /// The slot, 1 to 254.
    pub slot: u8,
    /// The host's end of the host ↔ sandbox veth pair (10.241.N.1).
    pub host_ip: Ipv4Addr,
    /// The sandbox's address (10.241.N.2), where its HTTP service is reachable from the host.
    pub sandbox_ip: Ipv4Addr,
    /// The sandbox's end of the sandbox ↔ db veth pair (10.242.N.1).
    pub sandbox_db_side_ip: Ipv4Addr,
    /// The db namespace's address (10.242.N.2), reachable only from the sandbox.
    pub db_ip: Ipv4Addr,
}

/// Prefix length of both per-sandbox networks.
pub(crate) const PREFIX_LEN: u8 = 24;

/// Interface name of the sandbox's veth inside both namespaces (names are per namespace).
pub(crate) const POD_INTERFACE: &str = "eth0";

/// Interface name, inside the sandbox namespace, of the veth that leads to the db namespace.
pub(crate) const DB_LINK_INTERFACE: &str = "db0";

impl SandboxAddresses {
    /// The addresses of slot `slot`.
    pub fn for_slot(slot: u8) -> Self {
        Self {
            slot,
            host_ip: Ipv4Addr::new(10, 241, slot, 1),
            sandbox_ip: Ipv4Addr::new(10, 241, slot, 2),
            sandbox_db_side_ip: Ipv4Addr::new(10, 242, slot, 1),
            db_ip: Ipv4Addr::new(10, 242, slot, 2),
        }
    }

    /// The db network's address, 10.242.N.0 (its prefix length is [`PREFIX_LEN`]).
    pub fn db_network(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 242, self.slot, 0)
    }

    /// The host's interface name, `msbN` (at most 6 characters, well under the 15 allowed).
    pub fn host_interface(&self) -> String {
        host_interface_name(self.slot)
    }
}

/// The host interface name of slot `slot`.
pub(crate) fn host_interface_name(slot: u8) -> String {
    format!("msb{slot}")
}

/// The slot whose host interface is `interface`, if it is one of ours (`msb1` … `msb254`).
pub(crate) fn slot_of_host_interface(interface: &str) -> Option<u8> {
    let digits = interface.strip_prefix("msb")?;
    if digits.starts_with('0') {
        return None;
    }
    let slot: u8 = digits.parse().ok()?;
    SLOTS.contains(&slot).then_some(slot)
}

/// The slot whose db network is `network` as `ip route` prints it (`10.242.N.0/24`), if any.
pub(crate) fn slot_of_db_network(network: &str) -> Option<u8> {
    let address: Ipv4Addr = network
        .strip_suffix(&format!("/{PREFIX_LEN}"))?
        .parse()
        .ok()?;
    let slot = SLOTS
        .into_iter()
        .find(|slot| SandboxAddresses::for_slot(*slot).db_network() == address)?;
    Some(slot)
}

/// The lowest slot not in `used`, or `None` when all 254 are taken.
pub(crate) fn allocate_slot(used: &BTreeSet<u8>) -> Option<u8> {
    SLOTS.into_iter().find(|slot| !used.contains(slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_addresses_follow_the_plan() {
        let addresses = SandboxAddresses::for_slot(7);
        assert_eq!(addresses.host_ip, Ipv4Addr::new(10, 241, 7, 1));
        assert_eq!(addresses.sandbox_ip, Ipv4Addr::new(10, 241, 7, 2));
        assert_eq!(addresses.sandbox_db_side_ip, Ipv4Addr::new(10, 242, 7, 1));
        assert_eq!(addresses.db_ip, Ipv4Addr::new(10, 242, 7, 2));
        assert_eq!(addresses.host_interface(), "msb7");
        assert!(SandboxAddresses::for_slot(254).host_interface().len() <= 15);
    }

    #[test]
    fn db_networks_map_back_to_slots() {
        assert_eq!(
            SandboxAddresses::for_slot(7).db_network(),
            Ipv4Addr::new(10, 242, 7, 0)
        );
        assert_eq!(slot_of_db_network("10.242.7.0/24"), Some(7));
        assert_eq!(slot_of_db_network("10.242.0.0/24"), None);
        assert_eq!(slot_of_db_network("10.242.7.0/16"), None);
        assert_eq!(slot_of_db_network("10.241.7.0/24"), None);
        assert_eq!(slot_of_db_network("default"), None);
    }

    #[test]
    fn allocation_takes_the_lowest_free_slot() {
        assert_eq!(allocate_slot(&BTreeSet::new()), Some(1));
        assert_eq!(allocate_slot(&BTreeSet::from([1, 2, 4])), Some(3));
        assert_eq!(allocate_slot(&BTreeSet::from([2])), Some(1));
        let all: BTreeSet<u8> = SLOTS.collect();
        assert_eq!(allocate_slot(&all), None);
        let all_but_last: BTreeSet<u8> = (1..=253).collect();
        assert_eq!(allocate_slot(&all_but_last), Some(254));
    }

    #[test]
    fn host_interfaces_map_back_to_slots() {
        assert_eq!(slot_of_host_interface("msb1"), Some(1));
        assert_eq!(slot_of_host_interface("msb254"), Some(254));
        assert_eq!(slot_of_host_interface("msb0"), None);
        assert_eq!(slot_of_host_interface("msb01"), None);
        assert_eq!(slot_of_host_interface("msb255"), None);
        assert_eq!(slot_of_host_interface("msbx"), None);
        assert_eq!(slot_of_host_interface("eth0"), None);
        for slot in SLOTS {
            assert_eq!(
                slot_of_host_interface(&host_interface_name(slot)),
                Some(slot)
            );
        }
    }
}
