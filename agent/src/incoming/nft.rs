//! Redirect rules in the target's network namespace, as an nftables table that belongs to the
//! agent: it is created through netlink with the `owner` flag, so the kernel deletes it the moment
//! the agent's netlink socket closes — on a clean exit, a crash, or SIGKILL. Rules can therefore
//! never outlive the agent, and each agent's table (`mirrord_agent_<pid>`) is its own, so two agents
//! on one target never touch each other's rules.
//!
//! The netlink messages are built by hand (a handful of nf_tables attributes); no C library and no
//! `nft` binary are needed in the target.

use std::io;
use std::os::fd::OwnedFd;

use super::netlink;

// Netlink and nf_tables numbers (linux/netlink.h, linux/netfilter/nfnetlink.h, nf_tables.h).
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NLM_F_DUMP: u16 = 0x300;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFPROTO_INET: u8 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFT_TABLE_F_OWNER: u32 = 0x2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_REDIR_REG_PROTO_MIN: u16 = 1;
const NFT_REG_1: u32 = 1;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATE: u32 = 0;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFT_CMP_NEQ: u32 = 1;
/// The flags byte of the TCP header, and two of its bits.
const TCP_FLAGS_OFFSET: u32 = 13;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED)`.
const CT_STATE_ESTABLISHED: u32 = 1 << 1;
const NLA_F_NESTED: u16 = 0x8000;

/// The agent's redirect table in the target's network namespace. Dropping it (or the agent
/// dying) removes every rule it holds.
#[derive(Debug)]
pub(crate) struct RedirectTable {
    socket: OwnedFd,
    table: String,
    sequence: u32,
}

impl RedirectTable {
    /// Creates the owned table on `socket`, a `NETLINK_NETFILTER` socket made in the target's
    /// network namespace.
    pub(crate) fn create(socket: OwnedFd, table: String) -> io::Result<RedirectTable> {
        let mut this = RedirectTable {
            socket,
            table,
            sequence: 0,
        };
        let mut attributes = Vec::new();
        put_str(&mut attributes, NFTA_TABLE_NAME, &this.table);
        put_u32(&mut attributes, NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
        // The kernel tracks and translates the packets of already redirected connections only
        // while something in the namespace needs connection tracking and nat: a nat chain whose
        // one rule reads the conntrack state (and does nothing), for the table's whole life, keeps
        // stolen connections working after their port's own chain and rule are gone.
        let keep = this.nat_chain_attributes(KEEP_NAT_CHAIN);
        let keep_rule = this.conntrack_rule(KEEP_NAT_CHAIN);
        this.transaction(&[
            (NFT_MSG_NEWTABLE, NLM_F_CREATE, attributes),
            (NFT_MSG_NEWCHAIN, NLM_F_CREATE, keep),
            (NFT_MSG_NEWRULE, NLM_F_CREATE, keep_rule),
        ])?;
        Ok(this)
    }

    /// The table's name, as `nft list ruleset` shows it (`table inet NAME`).
    pub(crate) fn name(&self) -> &str {
        &self.table
    }

    /// Redirects TCP connections that arrive from outside the namespace for `port` to `to_port`
    /// on the same host (`tcp dport PORT redirect to :TO_PORT` in a prerouting nat chain).
    /// Connections made from inside the namespace, including the agent's own connections to the
    /// target's service, never pass prerouting and are left alone.
    pub(crate) fn redirect(&mut self, port: u16, to_port: u16) -> io::Result<()> {
        let chain = chain_name(port);
        let chain_attributes = self.nat_chain_attributes(&chain);
        let rule = self.redirect_rule(&chain, port, to_port);
        self.transaction(&[
            (NFT_MSG_NEWCHAIN, NLM_F_CREATE, chain_attributes),
            (NFT_MSG_NEWRULE, NLM_F_CREATE, rule),
        ])
    }

    /// A prerouting nat base chain named `chain` in the table.
    fn nat_chain_attributes(&self, chain: &str) -> Vec<u8> {
        let mut attributes = Vec::new();
        put_str(&mut attributes, NFTA_CHAIN_TABLE, &self.table);
        put_str(&mut attributes, NFTA_CHAIN_NAME, chain);
        let mut hook = Vec::new();
        put_u32(&mut hook, NFTA_HOOK_HOOKNUM, NF_INET_PRE_ROUTING);
        put_u32(&mut hook, NFTA_HOOK_PRIORITY, NF_IP_PRI_NAT_DST as u32);
        put_nested(&mut attributes, NFTA_CHAIN_HOOK, &hook);
        put_str(&mut attributes, NFTA_CHAIN_TYPE, "nat");
        attributes
    }

    /// Removes the redirect of `port` (a missing one is not an error).
    pub(crate) fn remove(&mut self, port: u16) -> io::Result<()> {
        {
            let chain = chain_name(port);
            let mut flush = Vec::new();
            put_str(&mut flush, NFTA_RULE_TABLE, &self.table);
            put_str(&mut flush, NFTA_RULE_CHAIN, &chain);
            let mut delete = Vec::new();
            put_str(&mut delete, NFTA_CHAIN_TABLE, &self.table);
            put_str(&mut delete, NFTA_CHAIN_NAME, &chain);
            match self.transaction(&[(NFT_MSG_DELRULE, 0, flush), (NFT_MSG_DELCHAIN, 0, delete)]) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// `ct state established`, with no statement: it matches and does nothing, but holds the
    /// namespace's connection tracking.
    fn conntrack_rule(&self, chain: &str) -> Vec<u8> {
        let mut expressions = Vec::new();
        put_expression(&mut expressions, "ct", |data| {
            put_u32(data, NFTA_CT_KEY, NFT_CT_STATE);
            put_u32(data, NFTA_CT_DREG, NFT_REG_1);
        });
        put_expression(&mut expressions, "bitwise", |data| {
            put_u32(data, NFTA_BITWISE_SREG, NFT_REG_1);
            put_u32(data, NFTA_BITWISE_DREG, NFT_REG_1);
            put_u32(data, NFTA_BITWISE_LEN, 4);
            let mut mask = Vec::new();
            put_bytes(
                &mut mask,
                NFTA_DATA_VALUE,
                &CT_STATE_ESTABLISHED.to_ne_bytes(),
            );
            put_nested(data, NFTA_BITWISE_MASK, &mask);
            let mut xor = Vec::new();
            put_bytes(&mut xor, NFTA_DATA_VALUE, &0u32.to_ne_bytes());
            put_nested(data, NFTA_BITWISE_XOR, &xor);
        });
        put_expression(&mut expressions, "cmp", |data| {
            put_u32(data, NFTA_CMP_SREG, NFT_REG_1);
            put_u32(data, NFTA_CMP_OP, NFT_CMP_NEQ);
            let mut value = Vec::new();
            put_bytes(&mut value, NFTA_DATA_VALUE, &0u32.to_ne_bytes());
            put_nested(data, NFTA_CMP_DATA, &value);
        });
        let mut rule = Vec::new();
        put_str(&mut rule, NFTA_RULE_TABLE, &self.table);
        put_str(&mut rule, NFTA_RULE_CHAIN, chain);
        put_nested(&mut rule, NFTA_RULE_EXPRESSIONS, &expressions);
        rule
    }

    /// `meta l4proto tcp tcp dport PORT tcp flags & (syn | ack) == syn redirect to :TO_PORT`.
    fn redirect_rule(&self, chain: &str, port: u16, to_port: u16) -> Vec<u8> {
        let mut expressions = Vec::new();
        put_expression(&mut expressions, "meta", |data| {
            put_u32(data, NFTA_META_KEY, NFT_META_L4PROTO);
            put_u32(data, NFTA_META_DREG, NFT_REG_1);
        });
        put_expression(&mut expressions, "cmp", |data| {
            put_u32(data, NFTA_CMP_SREG, NFT_REG_1);
            put_u32(data, NFTA_CMP_OP, NFT_CMP_EQ);
            let mut value = Vec::new();
            put_bytes(&mut value, NFTA_DATA_VALUE, &[libc::IPPROTO_TCP as u8]);
            put_nested(data, NFTA_CMP_DATA, &value);
        });
        put_expression(&mut expressions, "payload", |data| {
            put_u32(data, NFTA_PAYLOAD_DREG, NFT_REG_1);
            put_u32(data, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
            put_u32(data, NFTA_PAYLOAD_OFFSET, 2);
            put_u32(data, NFTA_PAYLOAD_LEN, 2);
        });
        put_expression(&mut expressions, "cmp", |data| {
            put_u32(data, NFTA_CMP_SREG, NFT_REG_1);
            put_u32(data, NFTA_CMP_OP, NFT_CMP_EQ);
            let mut value = Vec::new();
            put_bytes(&mut value, NFTA_DATA_VALUE, &port.to_be_bytes());
            put_nested(data, NFTA_CMP_DATA, &value);
        });
        // Only a connection's first packet (SYN without ACK): a connection the target already had
        // when the rule appeared is picked up mid-stream by conntrack as if new, and must keep
        // going to the target's service (whether to close it is `flush_connections`' business).
        put_expression(&mut expressions, "payload", |data| {
            put_u32(data, NFTA_PAYLOAD_DREG, NFT_REG_1);
            put_u32(data, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
            put_u32(data, NFTA_PAYLOAD_OFFSET, TCP_FLAGS_OFFSET);
            put_u32(data, NFTA_PAYLOAD_LEN, 1);
        });
        put_expression(&mut expressions, "bitwise", |data| {
            put_u32(data, NFTA_BITWISE_SREG, NFT_REG_1);
            put_u32(data, NFTA_BITWISE_DREG, NFT_REG_1);
            put_u32(data, NFTA_BITWISE_LEN, 1);
            let mut mask = Vec::new();
            put_bytes(&mut mask, NFTA_DATA_VALUE, &[TCP_SYN | TCP_ACK]);
            put_nested(data, NFTA_BITWISE_MASK, &mask);
            let mut xor = Vec::new();
            put_bytes(&mut xor, NFTA_DATA_VALUE, &[0]);
            put_nested(data, NFTA_BITWISE_XOR, &xor);
        });
        put_expression(&mut expressions, "cmp", |data| {
            put_u32(data, NFTA_CMP_SREG, NFT_REG_1);
            put_u32(data, NFTA_CMP_OP, NFT_CMP_EQ);
            let mut value = Vec::new();
            put_bytes(&mut value, NFTA_DATA_VALUE, &[TCP_SYN]);
            put_nested(data, NFTA_CMP_DATA, &value);
        });
        put_expression(&mut expressions, "immediate", |data| {
            put_u32(data, NFTA_IMMEDIATE_DREG, NFT_REG_1);
            let mut value = Vec::new();
            put_bytes(&mut value, NFTA_DATA_VALUE, &to_port.to_be_bytes());
            put_nested(data, NFTA_IMMEDIATE_DATA, &value);
        });
        put_expression(&mut expressions, "redir", |data| {
            put_u32(data, NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1);
        });
        let mut rule = Vec::new();
        put_str(&mut rule, NFTA_RULE_TABLE, &self.table);
        put_str(&mut rule, NFTA_RULE_CHAIN, chain);
        put_nested(&mut rule, NFTA_RULE_EXPRESSIONS, &expressions);
        rule
    }

    /// Sends `messages` as one nf_tables batch and waits for every acknowledgement.
    fn transaction(&mut self, messages: &[(u16, u16, Vec<u8>)]) -> io::Result<()> {
        let mut batch = Vec::new();
        let first = self.next_sequence();
        push_message(
            &mut batch,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        let mut acknowledged = Vec::new();
        for (kind, flags, attributes) in messages {
            let sequence = self.next_sequence();
            acknowledged.push(sequence);
            let message_type = (NFNL_SUBSYS_NFTABLES << 8) | kind;
            push_message(
                &mut batch,
                message_type,
                NLM_F_REQUEST | NLM_F_ACK | flags,
                sequence,
                NFPROTO_INET,
                0,
                attributes,
            );
        }
        let last = self.next_sequence();
        push_message(
            &mut batch,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            last,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        netlink::send(&self.socket, &batch)?;
        let mut buffer = vec![0u8; 8192];
        let mut first_error = None;
        while !acknowledged.is_empty() && first_error.is_none() {
            let received = netlink::receive(&self.socket, &mut buffer)?;
            for message in netlink::messages(&buffer[..received])? {
                if let Some(result) = message.error() {
                    acknowledged.retain(|&s| s != message.sequence);
                    if let Err(error) = result {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The other mirrord agent's table that already redirects `port` in this namespace, if any
    /// (two redirects of one port cannot both work: the first one takes every connection).
    pub(crate) fn redirected_by_another(&mut self, port: u16) -> io::Result<Option<String>> {
        let wanted = chain_name(port);
        let tables = self.dump_chains()?;
        Ok(tables.into_iter().find_map(|(table, chain)| {
            (chain == wanted && table != self.table && table.starts_with(TABLE_PREFIX))
                .then_some(table)
        }))
    }

    /// Every `(table, chain)` of the inet family in the namespace.
    fn dump_chains(&mut self) -> io::Result<Vec<(String, String)>> {
        let sequence = self.next_sequence();
        let mut request = Vec::new();
        push_message(
            &mut request,
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN,
            NLM_F_REQUEST | NLM_F_DUMP,
            sequence,
            NFPROTO_INET,
            0,
            &[],
        );
        netlink::send(&self.socket, &request)?;
        let mut chains = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let received = netlink::receive(&self.socket, &mut buffer)?;
            for message in netlink::messages(&buffer[..received])? {
                if message.sequence != sequence {
                    continue;
                }
                if let Some(result) = message.error() {
                    result?;
                } else if message.kind == netlink::NLMSG_DONE {
                    return Ok(chains);
                } else if message.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN {
                    // After nfgenmsg (4 bytes).
                    if let Some(chain) = chain_of(message.payload.get(4..).unwrap_or_default()) {
                        chains.push(chain);
                    }
                }
            }
        }
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }
}

/// The empty nat chain that keeps the kernel's nat hooks registered (see [`RedirectTable::create`]).
const KEEP_NAT_CHAIN: &str = "keep_nat";

/// The start of every agent's table name (`mirrord_agent_<pid>`).
pub(crate) const TABLE_PREFIX: &str = "mirrord_agent_";

/// The table and chain names in a chain message's attributes.
fn chain_of(mut attributes: &[u8]) -> Option<(String, String)> {
    let (mut table, mut chain) = (None, None);
    while attributes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & !NLA_F_NESTED;
        if length < 4 || length > attributes.len() {
            break;
        }
        let text = || {
            let payload = &attributes[4..length];
            let end = payload
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(payload.len());
            String::from_utf8_lossy(&payload[..end]).into_owned()
        };
        match kind {
            NFTA_CHAIN_TABLE => table = Some(text()),
            NFTA_CHAIN_NAME => chain = Some(text()),
            _ => {}
        }
        attributes = &attributes[((length + 3) & !3).min(attributes.len())..];
    }
    Some((table?, chain?))
}

fn chain_name(port: u16) -> String {
    format!("port_{port}")
}

fn push_message(
    out: &mut Vec<u8>,
    message_type: u16,
    flags: u16,
    sequence: u32,
    family: u8,
    resource: u16,
    attributes: &[u8],
) {
    let mut payload = Vec::with_capacity(4 + attributes.len());
    payload.push(family);
    payload.push(0); // NFNETLINK_V0
    payload.extend_from_slice(&resource.to_be_bytes());
    payload.extend_from_slice(attributes);
    netlink::push_message(out, message_type, flags, sequence, &payload);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn put_bytes(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    pad(out);
}

fn put_str(out: &mut Vec<u8>, kind: u16, text: &str) {
    let mut payload = text.as_bytes().to_vec();
    payload.push(0);
    put_bytes(out, kind, &payload);
}

/// nf_tables attributes carry integers in network byte order.
fn put_u32(out: &mut Vec<u8>, kind: u16, value: u32) {
    put_bytes(out, kind, &value.to_be_bytes());
}

fn put_nested(out: &mut Vec<u8>, kind: u16, inner: &[u8]) {
    put_bytes(out, kind | NLA_F_NESTED, inner);
}

fn put_expression(out: &mut Vec<u8>, name: &str, build: impl FnOnce(&mut Vec<u8>)) {
    let mut element = Vec::new();
    put_str(&mut element, NFTA_EXPR_NAME, name);
    let mut data = Vec::new();
    build(&mut data);
    put_nested(&mut element, NFTA_EXPR_DATA, &data);
    put_nested(out, NFTA_LIST_ELEM, &element);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        put_str(&mut out, NFTA_TABLE_NAME, "ab");
        assert_eq!(out.len(), 8);
        assert_eq!(&out[..4], &[7, 0, 1, 0]);
        let mut nested = Vec::new();
        put_nested(&mut nested, NFTA_CHAIN_HOOK, &out);
        assert_eq!(
            u16::from_ne_bytes([nested[2], nested[3]]),
            NFTA_CHAIN_HOOK | NLA_F_NESTED
        );
    }

    #[test]
    fn chain_messages_name_their_table_and_chain() {
        let mut attributes = Vec::new();
        put_str(&mut attributes, NFTA_CHAIN_TABLE, "mirrord_agent_42");
        put_u32(&mut attributes, 2, 7);
        put_str(&mut attributes, NFTA_CHAIN_NAME, "port_80");
        assert_eq!(
            chain_of(&attributes),
            Some(("mirrord_agent_42".to_owned(), "port_80".to_owned()))
        );
        assert_eq!(chain_of(&attributes[..8]), None);
    }
}
